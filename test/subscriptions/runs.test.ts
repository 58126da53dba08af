import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DeliveryWorker } from '../../src/subscriptions/index.ts';
import { finishRun } from '../../src/subscriptions/runs.ts';
import { queueSignal } from '../../src/subscriptions/store.ts';
import { startTestApp } from '../support/app.ts';
import { claimAsAWorkerWould } from '../support/worker.ts';
import type { TestApp } from '../support/app.ts';
import { claim, patient } from '../support/fixtures.ts';
import { startReceiver } from '../support/receiver.ts';
import type { Receiver } from '../support/receiver.ts';
import { BACKPORT_SD, backportSubscription, classicSubscription, eventNumbers } from '../support/subscriptions.ts';
import { startTestWorker } from '../support/worker.ts';

/**
 * Delivery in runs (subscriptions/runs.ts, send.ts): a run of one subscription's notifications is
 * leased, sent in order and recorded together, several events may share a Backport bundle, and
 * none of it gives up order, event numbers without gaps, retries, or one sender per stream.
 */
let t: TestApp;
let token: string;
let receiver: Receiver;
let patientId: string;
const workers: DeliveryWorker[] = [];
const auth = { type: 'bearer' as const };

beforeAll(async () => {
  t = await startTestApp({ allowPrivateNetworks: true });
  token = await t.token();
  receiver = await startReceiver();
  patientId = (await request(t.app).post('/fhir/Patient').auth(token, auth).send(patient()).expect(201)).body.id;
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  receiver.respond([], 200);
});
afterAll(async () => {
  await receiver.close();
  await t.close();
});

async function worker(options: Parameters<typeof startTestWorker>[1] = {}): Promise<DeliveryWorker> {
  const w = await startTestWorker(t.db, options);
  workers.push(w);
  return w;
}

async function waitFor(what: string, done: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const at = (path: string) => receiver.received.filter((r) => r.url === path);
const numbersAt = (path: string): number[] => at(path).map((r) => JSON.parse(r.body)).filter((b) => b.entry[0].resource.parameter.some((p: any) => p.name === 'type' && p.valueCode === 'event-notification')).flatMap(eventNumbers);
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

/** An active Backport subscription to `path` (handshaken by a worker that is then stopped), its id. */
async function backport(path: string, maxCount?: number): Promise<string> {
  const body = backportSubscription('claim-changed', `${receiver.url}${path}`, { filters: [`identifier=${path}|`] });
  if (maxCount) (body.channel as any).extension = [{ url: `${BACKPORT_SD}/backport-max-count`, valuePositiveInt: maxCount }];
  const id = (await request(t.app).post('/fhir/Subscription').auth(token, auth).send(body).expect(201)).body.id;
  const w = await startTestWorker(t.db);
  await waitFor('the handshake', async () => (await request(t.app).get(`/fhir/Subscription/${id}`).auth(token, auth)).body.status === 'active');
  await w.stop();
  return id;
}

/** `count` Claims matched by the subscription on `path`, written concurrently. */
async function writeClaims(path: string, count: number): Promise<void> {
  await Promise.all(
    Array.from({ length: count }, (_, i) =>
      request(t.app).post('/fhir/Claim').auth(token, auth).send({ ...claim(`Patient/${patientId}`), identifier: [{ system: path, value: `c${i}` }] }).expect(201),
    ),
  );
}

describe('delivery in runs', () => {
  it('a backlog goes out in bundles of at most backport-max-count events, in order, every number once', async () => {
    await backport('/batched', 10);
    await writeClaims('/batched', 45);
    await worker();
    await waitFor('45 events', () => numbersAt('/batched').length >= 45);
    expect(numbersAt('/batched')).toEqual(range(45));
    const sizes = at('/batched').slice(1).map((r) => eventNumbers(JSON.parse(r.body)).length);
    expect(sizes).toEqual([10, 10, 10, 10, 5]);
  });

  it('without backport-max-count each event is its own bundle', async () => {
    await backport('/single');
    await writeClaims('/single', 12);
    await worker();
    await waitFor('12 events', () => numbersAt('/single').length >= 12);
    expect(at('/single').slice(1).map((r) => eventNumbers(JSON.parse(r.body)).length)).toEqual(Array(12).fill(1));
    expect(numbersAt('/single')).toEqual(range(12));
  });

  it('a failed send stops the stream: nothing behind it goes out until it succeeds, then all in order', async () => {
    await backport('/failing', 4);
    await writeClaims('/failing', 10);
    receiver.respond([503, 503], 200);
    await worker({ retrySchedule: [100, 100, 100] });
    await waitFor('10 events delivered after two refusals', () => numbersAt('/failing').length >= 3 * 4 + 6);
    const bundles = at('/failing').slice(1).map((r) => eventNumbers(JSON.parse(r.body)));
    // The failing bundle is sent again (twice refused), and only then what is behind it.
    expect(bundles).toEqual([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]);
    const rows = () => t.db.query<{ attempts: number; status: string }>(
      `SELECT n.attempts, n.status FROM subscription_notification n JOIN subscription_registry s ON s.tenant_id = n.tenant_id AND s.id = n.subscription_id
        WHERE s.config->>'endpoint' = $1 AND n.type = 'event-notification' ORDER BY n.seq`,
      [`${receiver.url}/failing`],
    );
    // A run is recorded after its last request was answered.
    await waitFor('the run recorded', async () => (await rows()).every((r) => r.status === 'delivered'));
    expect((await rows()).map((r) => r.attempts)).toEqual([3, 3, 3, 3, 1, 1, 1, 1, 1, 1]);
    // One attempt row per request, naming the first and last notification it carried.
    const [{ id }] = await t.db.query<{ id: string }>(`SELECT id FROM subscription_registry WHERE config->>'endpoint' = $1`, [`${receiver.url}/failing`]);
    const requests = await t.db.query<{ first: number; last: number; http_status: number }>(
      `SELECT a.seq - min(n.seq) OVER () AS first, a.last_seq - min(n.seq) OVER () AS last, a.http_status
         FROM delivery_attempt a JOIN subscription_notification n ON n.tenant_id = a.tenant_id AND n.subscription_id = a.subscription_id AND n.seq = a.seq
        WHERE a.subscription_id = $1 AND n.type = 'event-notification' ORDER BY a.id`,
      [id],
    );
    expect(requests.map((r) => [Number(r.first), Number(r.last), r.http_status])).toEqual([[0, 3, 503], [0, 3, 503], [0, 3, 200], [4, 7, 200], [8, 9, 200]]);
    // The console shows each notification with the attempts of the bundles it went in.
    const admin = await t.token('admin');
    const page = await request(t.app).get(`/admin/subscriptions/${id}/notifications?limit=20`).auth(admin, auth).expect(200);
    const byNumber = new Map(page.body.items.filter((n: any) => n.eventNumber).map((n: any) => [n.eventNumber, n.attempts.map((a: any) => a.httpStatus)]));
    expect([1, 2, 3, 4, 5, 8, 9, 10].map((e) => byNumber.get(e))).toEqual([...Array(4).fill([503, 503, 200]), ...Array(4).fill([200])]);
  });

  it('a replay across a heartbeat sends bundles that stop at it, and each attempt row names what its bundle carried', async () => {
    const id = await backport('/gap', 10);
    await writeClaims('/gap', 3);
    const w = await worker();
    await waitFor('3 events', () => numbersAt('/gap').length >= 3);
    await t.db.transaction((tx) => queueSignal(tx, 'default', id, 'heartbeat'));
    await waitFor('the heartbeat', () => at('/gap').length >= 1 + 1 + 1);
    await w.stop();
    await writeClaims('/gap', 3);
    await worker();
    await waitFor('6 events', () => numbersAt('/gap').length >= 6);
    // A run is recorded after its last request was answered; a replay requeues only what was.
    const allRecorded = async () => (await t.db.query(`SELECT 1 FROM subscription_notification WHERE subscription_id = $1 AND status = 'pending'`, [id])).length === 0;
    await waitFor('the runs recorded', allRecorded);
    // Replay from event 1: the delivered heartbeat stays between the pending events 3 and 4.
    const admin = await t.token('admin');
    await request(t.app).post(`/admin/subscriptions/${id}/replay`).auth(admin, auth).send({ fromEventNumber: 1 }).expect(200);
    await waitFor('6 events again', () => numbersAt('/gap').length >= 12);
    await waitFor('the replay recorded', allRecorded);
    const bundles = at('/gap').slice(1).map((r) => eventNumbers(JSON.parse(r.body))).filter((b) => b.length > 0);
    expect(bundles.slice(-2)).toEqual([[1, 2, 3], [4, 5, 6]]);
    const page = await request(t.app).get(`/admin/subscriptions/${id}/notifications?limit=20`).auth(admin, auth).expect(200);
    const heartbeat = page.body.items.find((n: any) => n.type === 'heartbeat');
    expect(heartbeat.attempts).toHaveLength(1); // its own, none of the replayed bundles'
    for (const n of page.body.items.filter((i: any) => i.type === 'event-notification')) expect(n.attempts).toHaveLength(2);
  });

  it("a Subscription deleted and created again under its id never gets the events its predecessor matched", async () => {
    const id = await backport('/reborn');
    await writeClaims('/reborn', 3); // matched by the first, not yet fanned out (no worker runs)
    await request(t.app).delete(`/fhir/Subscription/${id}`).auth(token, auth).expect(200);
    const again = backportSubscription('claim-changed', `${receiver.url}/reborn-again`, { filters: ['identifier=/reborn|'] });
    await request(t.app).put(`/fhir/Subscription/${id}`).auth(token, auth).send({ ...again, id }).expect(201);
    await worker();
    await waitFor('the handshake', async () => (await request(t.app).get(`/fhir/Subscription/${id}`).auth(token, auth)).body.status === 'active');
    await writeClaims('/reborn', 2);
    await waitFor('2 events', () => numbersAt('/reborn-again').length >= 2);
    await new Promise((r) => setTimeout(r, 300)); // room for anything more to arrive
    expect(numbersAt('/reborn-again')).toEqual([1, 2]);
    expect(numbersAt('/reborn')).toEqual([]);
    // Nor its attempts: the console shows each new notification with its own one.
    const admin = await t.token('admin');
    await waitFor('the runs recorded', async () => (await t.db.query(`SELECT 1 FROM subscription_notification WHERE subscription_id = $1 AND status = 'pending'`, [id])).length === 0);
    const page = await request(t.app).get(`/admin/subscriptions/${id}/notifications?limit=20`).auth(admin, auth).expect(200);
    expect(page.body.items.map((n: any) => n.attempts.length)).toEqual(page.body.items.map(() => 1));
  });

  it('a dead letter stops the stream and the Subscription; replay sends the rest in order', async () => {
    const id = await backport('/dead', 3);
    await writeClaims('/dead', 7);
    receiver.respond([400], 200); // a 400 is not retried: dead at once
    await worker();
    await waitFor('the Subscription in error', async () => (await request(t.app).get(`/fhir/Subscription/${id}`).auth(token, auth)).body.status === 'error');
    expect(at('/dead').slice(1).map((r) => eventNumbers(JSON.parse(r.body)))).toEqual([[1, 2, 3]]);
    const states = await t.db.query<{ status: string }>(`SELECT status FROM subscription_notification WHERE subscription_id = $1 AND type = 'event-notification' ORDER BY seq`, [id]);
    expect(states.map((s) => s.status)).toEqual(['dead', 'dead', 'dead', 'pending', 'pending', 'pending', 'pending']);
    // $resend: the handshake again, then every event from the dead-lettered one on, in order.
    await request(t.app).post(`/fhir/Subscription/${id}/$resend`).auth(token, auth).send({ resourceType: 'Parameters' }).expect(200);
    await waitFor('the replayed events', () => numbersAt('/dead').length >= 3 + 7);
    expect(numbersAt('/dead')).toEqual([1, 2, 3, ...range(7)]);
  });

  it('two workers started on one backlog never send two notifications of a stream at once', async () => {
    // A receiver of its own that holds each answer a moment and counts the requests open at once.
    let open = 0;
    let maxOpen = 0;
    const numbers: number[] = [];
    const slow = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        maxOpen = Math.max(maxOpen, ++open);
        const bundle = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        setTimeout(() => {
          numbers.push(...eventNumbers(bundle));
          open--;
          res.writeHead(200).end();
        }, 5);
      });
    });
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    try {
      const body = backportSubscription('claim-changed', `http://127.0.0.1:${(slow.address() as AddressInfo).port}/two`, { filters: ['identifier=/two|'] });
      (body.channel as any).extension = [{ url: `${BACKPORT_SD}/backport-max-count`, valuePositiveInt: 5 }];
      const id = (await request(t.app).post('/fhir/Subscription').auth(token, auth).send(body).expect(201)).body.id;
      const w = await startTestWorker(t.db);
      await waitFor('the handshake', async () => (await request(t.app).get(`/fhir/Subscription/${id}`).auth(token, auth)).body.status === 'active');
      await w.stop();
      await writeClaims('/two', 60);
      await Promise.all([worker({ runSize: 7 }), worker({ runSize: 7 })]);
      await waitFor('60 events', () => numbers.length >= 60);
      await new Promise((r) => setTimeout(r, 200));
      expect(numbers).toEqual(range(60));
      expect(maxOpen).toBe(1);
    } finally {
      slow.closeAllConnections();
      await new Promise((r) => slow.close(r));
    }
  });

  it('a run leased by a worker that died mid-run is delivered again, in order, once its lease runs out; the dead worker is fenced off', async () => {
    const id = await backport('/crash', 50);
    await writeClaims('/crash', 20);
    // The dead worker: leased the run (2 s) and never finished it.
    const runs = await claimAsAWorkerWould(t, 2);
    const run = runs.find((r) => r[0].subscriptionId === id)!;
    expect(run.map((n) => n.eventNumber)).toEqual(range(20));
    expect(new Set(run.map((n) => n.leaseToken)).size).toBe(1);
    await worker();
    await waitFor('20 events', () => numbersAt('/crash').length >= 20);
    expect(numbersAt('/crash')).toEqual(range(20));
    // What the dead worker might still report (half its run delivered) changes nothing.
    const half = run.slice(0, 10).map((n) => ({ seqs: [n.seq], result: { httpStatus: 200, latencyMs: 1 }, outcome: { next: 'delivered' as const } }));
    expect(await t.db.transaction((tx) => finishRun(tx, run, half, 100, 2))).toEqual({ fenced: true });
    const rows = () => t.db.query<{ status: string; attempts: number }>(`SELECT status, attempts FROM subscription_notification WHERE subscription_id = $1 AND type = 'event-notification' ORDER BY seq`, [id]);
    await waitFor('the run recorded', async () => (await rows()).every((r) => r.status === 'delivered'));
    // One attempt each: the dead worker's claim sent nothing, so it counted none.
    expect(await rows()).toEqual(Array(20).fill({ status: 'delivered', attempts: 1 }));
  });

  it('finishing part of a run records what was sent and releases the rest as it was', async () => {
    const id = await backport('/partial');
    await writeClaims('/partial', 6);
    const run = (await claimAsAWorkerWould(t, 30)).find((r) => r[0].subscriptionId === id)!;
    expect(run).toHaveLength(6);
    const ok = { result: { httpStatus: 200, latencyMs: 1 }, outcome: { next: 'delivered' as const } };
    const attempted = [
      { seqs: [run[0].seq], ...ok },
      { seqs: [run[1].seq], ...ok },
      { seqs: [run[2].seq], result: { httpStatus: 503, latencyMs: 1 }, outcome: { next: 'retry' as const, delayMs: 60_000, error: 'HTTP 503' } },
    ];
    expect(await t.db.transaction((tx) => finishRun(tx, run, attempted, 100, 30))).toEqual({ fenced: false, next: undefined });
    const rows = await t.db.query<{ status: string; attempts: number; due: boolean }>(
      `SELECT status, attempts, next_attempt_at <= now() AS due
         FROM subscription_notification WHERE subscription_id = $1 AND type = 'event-notification' ORDER BY seq`,
      [id],
    );
    const behind = { status: 'pending', attempts: 0, due: true };
    expect(rows).toEqual([
      { status: 'delivered', attempts: 1, due: true },
      { status: 'delivered', attempts: 1, due: true },
      { status: 'pending', attempts: 1, due: false },
      behind,
      behind,
      behind,
    ]);
    // The stream's lease is let go, not held until it runs out.
    expect(await t.db.query(`SELECT token, lease_until FROM subscription_lease WHERE id = $1`, [id])).toEqual([{ token: null, lease_until: null }]);
    const attempts = await t.db.query<{ http_status: number }>('SELECT http_status FROM delivery_attempt WHERE subscription_id = $1 AND seq >= $2 ORDER BY seq', [id, run[0].seq]);
    expect(attempts.map((a) => a.http_status)).toEqual([200, 200, 503]);
    // The failed head holds the stream: nothing is claimable behind it.
    expect((await claimAsAWorkerWould(t, 30)).filter((r) => r[0].subscriptionId === id)).toEqual([]);
  });

  it('a write to a subscription being sent is woken by NOTIFY, never left for the poll', async () => {
    // A poll an hour apart: only the commits' NOTIFYs (and the end of each run) can wake the worker.
    await request(t.app).post('/fhir/Subscription').auth(token, auth).send(classicSubscription('Claim?identifier=/notify|', `${receiver.url}/notify`)).expect(201);
    await worker({ pollIntervalMs: 3_600_000 });
    for (let i = 0; i < 15; i++) {
      const writes = Array.from({ length: 1 + (i % 3) }, (_, k) =>
        request(t.app).post('/fhir/Claim').auth(token, auth).send({ ...claim(`Patient/${patientId}`), identifier: [{ system: '/notify', value: `n${i}-${k}` }] }).expect(201),
      );
      const expected = at('/notify').length + writes.length;
      await Promise.all(writes);
      await waitFor(`delivery ${i}`, () => at('/notify').length >= expected, 15_000);
    }
  });

  it('with more busy subscriptions than streams, each gets its turn (longest waiting first)', async () => {
    for (const path of ['/fair-a', '/fair-b', '/fair-c']) {
      await request(t.app).post('/fhir/Subscription').auth(token, auth).send(classicSubscription(`Claim?identifier=${path}|`, `${receiver.url}${path}`)).expect(201);
    }
    // Interleaved writes: a1 b1 c1 a2 b2 c2 ...
    for (let i = 0; i < 6; i++) {
      for (const path of ['/fair-a', '/fair-b', '/fair-c']) {
        await request(t.app).post('/fhir/Claim').auth(token, auth).send({ ...claim(`Patient/${patientId}`), identifier: [{ system: path, value: `f${i}` }] }).expect(201);
      }
    }
    await worker({ concurrency: 1, runSize: 2 });
    const fair = () => receiver.received.filter((r) => r.url.startsWith('/fair-')).map((r) => r.url);
    await waitFor('18 pings', () => fair().length >= 18);
    // One stream at a time, two pings a run: every subscription is served within the first three runs.
    expect(new Set(fair().slice(0, 6))).toEqual(new Set(['/fair-a', '/fair-b', '/fair-c']));
    for (const path of ['/fair-a', '/fair-b', '/fair-c']) expect(fair().filter((u) => u === path)).toHaveLength(6);
  });

  it('backport-max-count is refused on a classic subscription and outside 1..1000', async () => {
    const classic = classicSubscription('Claim?status=active', `${receiver.url}/x`);
    (classic.channel as any).extension = [{ url: `${BACKPORT_SD}/backport-max-count`, valuePositiveInt: 5 }];
    const res = await request(t.app).post('/fhir/Subscription').auth(token, auth).send(classic);
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toContain('backport-max-count');
    for (const value of [0, 1001]) {
      const body = backportSubscription('claim-changed', `${receiver.url}/x`);
      (body.channel as any).extension = [{ url: `${BACKPORT_SD}/backport-max-count`, valuePositiveInt: value }];
      const refused = await request(t.app).post('/fhir/Subscription').auth(token, auth).send(body);
      expect(refused.status).toBe(400);
    }
  });
});
