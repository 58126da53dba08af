import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/** The real entry point as `npm start` runs it: a child process on a free port. */
const dataDir = mkdtempSync(join(tmpdir(), 'fhir-billing-'));
const schema = `test_main_${randomBytes(4).toString('hex')}`;
const bootstrap = { clientId: 'operator', clientSecret: randomBytes(24).toString('base64url') };
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function startServer(): Promise<{ child: ChildProcess; base: string; logs: string[] }> {
  const port = await freePort();
  const logs: string[] = [];
  const child = spawn(process.execPath, ['src/main.ts'], {
    env: {
      ...process.env,
      PORT: String(port),
      DATA_DIR: dataDir,
      DATABASE_SCHEMA: schema,
      LOG_LEVEL: 'info',
      BOOTSTRAP_CLIENT_ID: bootstrap.clientId,
      BOOTSTRAP_CLIENT_SECRET: bootstrap.clientSecret,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => logs.push(...String(d).split('\n').filter(Boolean)));
  child.stderr!.on('data', (d) => logs.push(String(d)));
  const base = `http://127.0.0.1:${port}`;
  let exited = false;
  child.on('exit', () => (exited = true));
  for (let i = 0; i < 200 && !exited; i++) {
    const ok = await fetch(`${base}/healthz`).then((r) => r.ok, () => false);
    if (ok) return { child, base, logs };
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`server did not become healthy:\n${logs.join('\n')}`);
}

/** As the Cair contract (seeds/000) does it: POST /api/token, then Bearer. */
async function getToken(base: string): Promise<string> {
  const res = await fetch(`${base}/api/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(bootstrap),
  });
  expect(res.status).toBe(200);
  return (await res.json()).accessToken;
}

function exitCode(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
}

describe('the server process', () => {
  it('serves, logs JSON with request ids, stops cleanly on SIGTERM and keeps its data', async () => {
    const first = await startServer();
    const token = await getToken(first.base);
    const created = await fetch(`${first.base}/fhir/Patient`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/fhir+json', 'X-Request-Id': 'req-test-1', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ resourceType: 'Patient', name: [{ family: 'Durable' }] }),
    });
    expect(created.status).toBe(201);
    expect(created.headers.get('x-request-id')).toBe('req-test-1');
    const { id } = await created.json();

    const exited = exitCode(first.child);
    first.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const lines = first.logs.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(lines.some((l) => l.req?.id === 'req-test-1' && l.res?.statusCode === 201)).toBe(true);

    const second = await startServer();
    try {
      // The token from before the restart still verifies: the signing keys live in the database.
      const read = await fetch(`${second.base}/fhir/Patient/${id}`, { headers: { Authorization: `Bearer ${token}` } });
      expect(read.status).toBe(200);
      expect((await read.json()).name[0].family).toBe('Durable');
    } finally {
      const done = exitCode(second.child);
      second.child.kill('SIGTERM');
      expect(await done).toBe(0);
    }
  });
});
