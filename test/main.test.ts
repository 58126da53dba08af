import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fetchToken, startServerProcess } from './support/process.ts';

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
  });

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
  });
});
