import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CLAIM_ID_SYSTEM, claim, patient } from '../support/fixtures.ts';
import { fetchToken, startServerProcess } from '../support/process.ts';
import type { ServerProcess } from '../support/process.ts';
import { startReceiver } from '../support/receiver.ts';
import { backportSubscription, classicSubscription, eventNumbers } from '../support/subscriptions.ts';

/** Delivery across real processes: the API and workers as `npm start -- --role=...` runs them. */
const dataDir = mkdtempSync(join(tmpdir(), 'fhir-billing-subs-'));
const credentials = { clientId: 'operator', clientSecret: randomBytes(24).toString('base64url') };
const started: ServerProcess[] = [];
afterEach(() => {
  for (const p of started.splice(0)) p.child.kill('SIGKILL');
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

function env(schema: string): Record<string, string> {
  return {
    DATA_DIR: join(dataDir, schema),
    DATABASE_SCHEMA: schema,
    BOOTSTRAP_CLIENT_ID: credentials.clientId,
    BOOTSTRAP_CLIENT_SECRET: credentials.clientSecret,
    OUTBOUND_ALLOW_PRIVATE_NETWORKS: 'true',
    DELIVERY_POLL_INTERVAL_MS: '100',
  };
}

async function start(schema: string, role: 'api' | 'worker'): Promise<ServerProcess> {
  const p = await startServerProcess(env(schema), [`--role=${role}`]);
  started.push(p);
  return p;
}

async function post(base: string, token: string, path: string, body: object): Promise<any> {
  const res = await fetch(`${base}/fhir/${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/fhir+json', Authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  if (res.status !== 201) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

describe('delivery survives the process', () => {
  it('a kill -9 right after the commit loses nothing: a worker started later delivers it', async () => {
    const receiver = await startReceiver();
    const schema = `test_kill_${randomBytes(4).toString('hex')}`;
    const api = await start(schema, 'api');
    const token = await fetchToken(api.base, credentials);
    await post(api.base, token, 'Subscription', classicSubscription(`Claim?identifier=${CLAIM_ID_SYSTEM}|killed-1`, receiver.url));
    const p = await post(api.base, token, 'Patient', patient());
    await post(api.base, token, 'Claim', claim(`Patient/${p.id}`, 'killed-1'));
    api.child.kill('SIGKILL');
    expect(await api.exited).toBeNull();
    expect(receiver.received).toHaveLength(0);

    await start(schema, 'worker');
    const [ping] = await receiver.waitFor(1, 20_000);
    expect(ping.method).toBe('POST');
    await receiver.close();
  });

  // The embedded database belongs to one process, so several processes need PostgreSQL.
  it.skipIf(!process.env.DATABASE_URL)('two worker processes deliver every event once, in order', async () => {
    const receiver = await startReceiver();
    const schema = `test_workers_${randomBytes(4).toString('hex')}`;
    const api = await start(schema, 'api');
    await Promise.all([start(schema, 'worker'), start(schema, 'worker')]);
    const token = await fetchToken(api.base, credentials);
    const sub = await post(api.base, token, 'Subscription', backportSubscription('claim-changed', receiver.url));
    await receiver.waitFor(1, 20_000); // handshake
    for (let i = 0; i < 100; i++) {
      const res = await fetch(`${api.base}/fhir/Subscription/${sub.id}`, { headers: { Authorization: `Bearer ${token}` } });
      if ((await res.json()).status === 'active') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const p = await post(api.base, token, 'Patient', patient());
    await Promise.all(Array.from({ length: 40 }, (_, i) => post(api.base, token, 'Claim', claim(`Patient/${p.id}`, `two-workers-${i}`))));
    await receiver.waitFor(41, 30_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(receiver.received).toHaveLength(41);
    const numbers = receiver.received.slice(1).flatMap((r) => eventNumbers(JSON.parse(r.body)));
    expect(numbers).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    await receiver.close();
  });
});
