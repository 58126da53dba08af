import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fetchToken, freePort, processEnv, startServerProcess } from './support/process.ts';

/** The real entry point as `npm start` runs it: a child process on a free port. */
const dataDir = mkdtempSync(join(tmpdir(), 'fhir-billing-'));
const schema = `test_main_${randomBytes(4).toString('hex')}`;
const bootstrap = { clientId: 'operator', clientSecret: randomBytes(24).toString('base64url') };
const env = {
  DATA_DIR: dataDir,
  DATABASE_SCHEMA: schema,
  BOOTSTRAP_CLIENT_ID: bootstrap.clientId,
  BOOTSTRAP_CLIENT_SECRET: bootstrap.clientSecret,
};
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));
/** Each test starts real server processes, which take tens of seconds on a loaded machine. */
const PROCESS_TEST_TIMEOUT = 180_000;

/** Runs `node src/main.ts` until it exits by itself (a start-up that must fail). */
async function runUntilExit(env: Record<string, string | undefined>): Promise<{ code: number | null; lines: string[]; stderr: string }> {
  const child = spawn(process.execPath, ['src/main.ts'], { env: processEnv({ LOG_LEVEL: 'info', ...env }), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += String(d)));
  child.stderr.on('data', (d) => (stderr += String(d)));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, lines: stdout.split('\n').filter(Boolean), stderr };
}

/** The one line a failed start-up must end with: JSON, level error, the message, no stack trace. */
function expectOneFailureLine(run: { code: number | null; lines: string[]; stderr: string }, message: RegExp): Record<string, unknown> {
  expect(run.code).toBe(1);
  const parsed = run.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const fatal = parsed.filter((l) => (l.level as number) >= 50);
  expect(fatal).toHaveLength(1);
  expect(parsed.at(-1)).toBe(fatal[0]);
  expect(fatal[0]!.msg).toMatch(message);
  expect(`${run.lines.join('\n')}${run.stderr}`).not.toMatch(/\n\s+at /);
  return fatal[0]!;
}

describe('the server process', () => {
  it('serves, logs JSON with request ids, stops cleanly on SIGTERM and keeps its data', async () => {
    const first = await startServerProcess(env);
    const token = await fetchToken(first.base, bootstrap);
    const created = await fetch(`${first.base}/fhir/Patient`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/fhir+json', 'X-Request-Id': 'req-test-1', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ resourceType: 'Patient', name: [{ family: 'Durable' }] }),
    });
    expect(created.status).toBe(201);
    expect(created.headers.get('x-request-id')).toBe('req-test-1');
    const { id } = await created.json();

    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    const lines = first.logs.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(lines.some((l) => l.req?.id === 'req-test-1' && l.res?.statusCode === 201)).toBe(true);

    const second = await startServerProcess(env);
    try {
      // The token from before the restart still verifies: the signing keys live in the database.
      const read = await fetch(`${second.base}/fhir/Patient/${id}`, { headers: { Authorization: `Bearer ${token}` } });
      expect(read.status).toBe(200);
      expect((await read.json()).name[0].family).toBe('Durable');
    } finally {
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    }
  }, PROCESS_TEST_TIMEOUT);

  it('on a first start without BOOTSTRAP_CLIENT_*, creates an API client and shows its secret once', async () => {
    const fresh = { DATA_DIR: join(dataDir, 'first-start'), DATABASE_SCHEMA: `${schema}_first` };
    const first = await startServerProcess(fresh);
    try {
      const shown = first.logs.join('\n');
      const secret = /clientSecret: (\S+)/.exec(shown)?.[1];
      expect(secret).toBeDefined();
      const token = await fetchToken(first.base, { clientId: 'admin', clientSecret: secret! });
      const search = await fetch(`${first.base}/fhir/Patient`, { headers: { Authorization: `Bearer ${token}` } });
      expect(search.status).toBe(200);
    } finally {
      first.child.kill('SIGTERM');
      await first.exited;
    }
    const again = await startServerProcess(fresh);
    again.child.kill('SIGTERM');
    await again.exited;
    expect(again.logs.join('\n')).not.toMatch(/clientSecret:/);
  }, PROCESS_TEST_TIMEOUT);

  it('refuses a second server on one embedded data directory, and takes over the lock a kill -9 left', async () => {
    const shared = { ...env, DATABASE_URL: undefined, DATA_DIR: join(dataDir, 'shared') };
    const first = await startServerProcess(shared);
    let survivor: Awaited<ReturnType<typeof startServerProcess>> | undefined;
    try {
      const token = await fetchToken(first.base, bootstrap);
      const created = await fetch(`${first.base}/fhir/Patient`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/fhir+json', Authorization: `Bearer ${token}` },
        body: JSON.stringify({ resourceType: 'Patient', name: [{ family: 'Acknowledged' }] }),
      });
      expect(created.status).toBe(201);
      const { id } = await created.json();

      const second = await runUntilExit({ ...shared, PORT: String(await freePort()) });
      const line = expectOneFailureLine(second, new RegExp(`in use by process ${first.child.pid}`));
      expect(line).toMatchObject({ phase: 'database', code: 'DATA_DIR_IN_USE' });

      first.child.kill('SIGKILL');
      await first.exited;
      const lockFile = join(shared.DATA_DIR, 'fhir-billing.lock');
      expect(JSON.parse(readFileSync(lockFile, 'utf8')).pid).toBe(first.child.pid);
      survivor = await startServerProcess(shared);
      expect(JSON.parse(readFileSync(lockFile, 'utf8')).pid).toBe(survivor.child.pid);
      const read = await fetch(`${survivor.base}/fhir/Patient/${id}`, { headers: { Authorization: `Bearer ${token}` } });
      expect(read.status).toBe(200);
      survivor.child.kill('SIGTERM');
      expect(await survivor.exited).toBe(0);
      expect(existsSync(lockFile)).toBe(false);
    } finally {
      first.child.kill('SIGKILL');
      survivor?.child.kill('SIGKILL');
    }
  }, PROCESS_TEST_TIMEOUT);

  it('exits 1 with one JSON line when its port is in use', async () => {
    const occupant = createServer();
    const port = await new Promise<number>((resolve) => occupant.listen(0, '127.0.0.1', () => resolve((occupant.address() as { port: number }).port)));
    try {
      const run = await runUntilExit({ ...env, DATABASE_URL: undefined, DATA_DIR: 'memory://', PORT: String(port) });
      const line = expectOneFailureLine(run, new RegExp(`port ${port} is already in use`));
      expect(line).toMatchObject({ phase: 'listen', code: 'EADDRINUSE' });
      expect(run.lines.some((l) => l.includes('listening'))).toBe(false);
    } finally {
      occupant.close();
    }
  }, PROCESS_TEST_TIMEOUT);

  it('logs the settings that matter at start, never a password, and a failed start-up as one JSON line', async () => {
    const badSetting = await runUntilExit({ ...env, PORT: 'eighty' });
    expect(expectOneFailureLine(badSetting, /Invalid configuration: PORT/)).toMatchObject({ phase: 'configuration' });

    // A closed port on loopback: the database cannot be reached.
    const closed = await freePort();
    const unreachable = await runUntilExit({
      ...env,
      DATABASE_URL: `postgres://billing:hunter2-secret@127.0.0.1:${closed}/billing_db`,
      PUBLIC_BASE_URL: 'https://operator:also-secret@billing.example.com/',
      OUTBOUND_ALLOW_PRIVATE_NETWORKS: 'true',
    });
    expect(expectOneFailureLine(unreachable, /cannot connect to the database/)).toMatchObject({ code: 'ECONNREFUSED' });
    const starting = JSON.parse(unreachable.lines[0]!);
    expect(starting).toMatchObject({
      msg: 'starting',
      database: { kind: 'postgres', host: '127.0.0.1', port: closed, database: 'billing_db' },
      publicBaseUrl: 'https://billing.example.com',
      allowPrivateNetworks: true,
    });
    expect(unreachable.lines.join('\n') + unreachable.stderr).not.toMatch(/secret|billing:/);

    // A data directory that cannot be made (its parent is a file).
    const notADirectory = join(dataDir, 'a-file', 'data');
    writeFileSync(join(dataDir, 'a-file'), '');
    const embedded = await runUntilExit({ ...env, DATABASE_URL: undefined, DATA_DIR: notADirectory });
    expect(expectOneFailureLine(embedded, /cannot open the database: .*not a directory/)).toMatchObject({ phase: 'database', code: 'ENOTDIR' });
    expect(JSON.parse(embedded.lines[0]!)).toMatchObject({ msg: 'starting', database: { kind: 'embedded', dataDir: notADirectory } });
  }, PROCESS_TEST_TIMEOUT);
});
