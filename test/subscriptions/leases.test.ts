import { createServer } from 'node:http';
import type { Server } from 'node:http';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { finishRun } from '../../src/subscriptions/runs.ts';
import type { DeliveryWorker } from '../../src/subscriptions/index.ts';
import { startTestApp } from '../support/app.ts';
import { claimAsAWorkerWould } from '../support/worker.ts';
import type { TestApp } from '../support/app.ts';
import { CLAIM_ID_SYSTEM, claim, patient } from '../support/fixtures.ts';
import { classicSubscription } from '../support/subscriptions.ts';
import { startTestWorker } from '../support/worker.ts';

/**
 * Delivery leases: short, renewed while a send is in flight, fenced by a token. A worker that died
 * holding a claim delays its subscription by the lease (seconds), a slow send keeps its claim, and
 * a worker whose lease was taken over changes nothing.
 */
let t: TestApp;
let token: string;
const workers: DeliveryWorker[] = [];
const auth = { type: 'bearer' as const };

/** A receiver that answers each request after `holdMs`, counting how many are open at once. */
interface SlowReceiver {
  url: string;
  holdMs: number;
  received: number;
  maxOpen: number;
  close: () => Promise<void>;
}
let receiver: SlowReceiver;

beforeAll(async () => {
  t = await startTestApp({ allowPrivateNetworks: true });
  token = await t.token();
  let open = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      receiver.received++;
      receiver.maxOpen = Math.max(receiver.maxOpen, ++open);
      setTimeout(() => {
        open--;
        res.writeHead(200).end();
      }, receiver.holdMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver = {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`,
    holdMs: 0,
    received: 0,
    maxOpen: 0,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});
afterAll(async () => {
  await receiver.close();
  await t.close();
});

async function subscribeAndWrite(billId: string): Promise<void> {
  await request(t.app).post('/fhir/Subscription').auth(token, auth).send(classicSubscription(`Claim?identifier=${CLAIM_ID_SYSTEM}|${billId}`, receiver.url)).expect(201);
  const p = (await request(t.app).post('/fhir/Patient').auth(token, auth).send(patient()).expect(201)).body.id;
  await request(t.app).post('/fhir/Claim').auth(token, auth).send(claim(`Patient/${p}`, billId)).expect(201);
}

async function waitFor(what: string, done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function delivery(): Promise<{ status: string; attempts: number }[]> {
  return t.db.query('SELECT status, attempts FROM subscription_notification ORDER BY occurred_at DESC LIMIT 1');
}

describe('delivery leases', () => {
  it('a send longer than the lease keeps it: two workers, one request, delivered once', async () => {
    receiver.received = 0;
    receiver.maxOpen = 0;
    receiver.holdMs = 3000; // three times the lease
    workers.push(await startTestWorker(t.db, { leaseSeconds: 1 }), await startTestWorker(t.db, { leaseSeconds: 1 }));
    await subscribeAndWrite('lease-slow-1');
    await waitFor('the slow delivery recorded', () => receiver.received >= 1, 20_000);
    for (let i = 0; i < 200 && (await delivery())[0]?.status !== 'delivered'; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await delivery()).toEqual([{ status: 'delivered', attempts: 1 }]);
    expect(receiver.received).toBe(1);
    expect(receiver.maxOpen).toBe(1);
  });

  it('a claim whose worker died runs out with its lease, and a live worker delivers it', async () => {
    receiver.received = 0;
    receiver.holdMs = 0;
    await subscribeAndWrite('lease-dead-1');
    // A worker claims (a 2 s lease) and dies before sending: nothing of it is left but its claim.
    const [orphan] = await claimAsAWorkerWould(t, 2);
    expect(orphan).toBeDefined();
    workers.push(await startTestWorker(t.db));
    // Under the old 90 s lease this would wait a minute and a half.
    await waitFor('the orphaned notification delivered', () => receiver.received >= 1, 20_000);

    // The dead worker's outcome, should it ever arrive, is fenced off: its token is no longer the claim's.
    const failed = { seqs: [orphan[0].seq], result: { httpStatus: 500, latencyMs: 1 }, outcome: { next: 'retry' as const, delayMs: 0, error: 'HTTP 500' } };
    const late = await t.db.transaction((tx) => finishRun(tx, orphan, [failed], 100, 2));
    expect(late).toEqual({ fenced: true });
    for (let i = 0; i < 200 && (await delivery())[0]?.status !== 'delivered'; i++) await new Promise((r) => setTimeout(r, 50));
    // The dead worker's claim sent nothing and counted no attempt.
    expect(await delivery()).toEqual([{ status: 'delivered', attempts: 1 }]);
    const attempts = await t.db.query<{ http_status: number }>(
      'SELECT http_status FROM delivery_attempt WHERE subscription_id = $1 AND seq = $2',
      [orphan[0].subscriptionId, orphan[0].seq],
    );
    expect(attempts).toEqual([{ http_status: 200 }]);
  });
});
