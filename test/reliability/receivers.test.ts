import { createServer } from 'node:http';
import type { Server, ServerResponse } from 'node:http';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Subscription } from '@medplum/fhirtypes';
import type { DeliveryWorker } from '../../src/subscriptions/index.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { claim, patient } from '../support/fixtures.ts';
import { BACKPORT_SD, OWN_SD, classicSubscription } from '../support/subscriptions.ts';
import { startTestWorker } from '../support/worker.ts';
import { waitUntil } from './support.ts';

/**
 * Receivers that fail in each way a real one does: too slow (past the subscription's timeout), 500,
 * a reset connection, a redirect to a private address; one that holds a request open; one that is
 * healthy. Retries, dead letters and $resend behave as README says, and no bad subscriber delays
 * the others. One server per behaviour, so that kept-alive sockets do not mix them.
 */
type Mode = 'ok' | 'hold' | 'timeout' | '500' | 'reset' | 'redirect';

interface FaultReceiver {
  url: string;
  mode: Mode;
  /** Claim ids in the order their notifications were answered 2xx. */
  delivered: string[];
  requests: number;
  /** Requests held open ('hold'), answered by release(). */
  held: ServerResponse[];
  release(): void;
  close(): Promise<void>;
}

async function faultReceiver(mode: Mode): Promise<FaultReceiver> {
  const r: FaultReceiver = {
    url: '',
    mode,
    delivered: [],
    requests: 0,
    held: [],
    release() {
      for (const res of r.held.splice(0)) res.writeHead(200).end();
    },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      r.requests++;
      const id = /\/Claim\/([^/?]+)$/.exec(req.url ?? '')?.[1] ?? '?';
      switch (r.mode) {
        case 'ok':
          r.delivered.push(id);
          res.writeHead(200).end();
          break;
        case 'hold':
          r.held.push(res);
          res.on('finish', () => r.delivered.push(id));
          break;
        case 'timeout':
          break; // never answered: the sender's timeout ends it
        case '500':
          res.writeHead(500).end();
          break;
        case 'reset':
          req.socket.destroy();
          break;
        case 'redirect':
          res.writeHead(302, { Location: 'http://10.0.0.1/hook' }).end();
          break;
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;
  return r;
}

let t: TestApp;
let token: string;
let worker: DeliveryWorker;
const receivers = new Map<Mode, FaultReceiver>();
const auth = { type: 'bearer' as const };

beforeAll(async () => {
  t = await startTestApp({ allowPrivateNetworks: true });
  token = await t.token();
  worker = await startTestWorker(t.db, { retrySchedule: [5_000], pollIntervalMs: 50 });
  for (const mode of ['ok', 'hold', 'timeout', '500', 'reset', 'redirect'] as const) receivers.set(mode, await faultReceiver(mode));
});
afterAll(async () => {
  for (const r of receivers.values()) r.release();
  await worker.stop();
  await Promise.all([...receivers.values()].map((r) => r.close()));
  await t.close();
});

/** A classic rest-hook on every Claim, the resource PUT to the receiver; bad ones retry quickly, 3 attempts. */
async function subscribe(mode: Mode): Promise<string> {
  const quick = mode !== 'ok' && mode !== 'hold';
  const sub = classicSubscription('Claim', receivers.get(mode)!.url, {
    channel: {
      type: 'rest-hook',
      endpoint: receivers.get(mode)!.url,
      payload: 'application/fhir+json',
      ...(mode === 'timeout' && { extension: [{ url: `${BACKPORT_SD}/backport-timeout`, valueUnsignedInt: 1 }] }),
    },
    ...(quick && {
      extension: [
        { url: `${OWN_SD}/subscription-retry-schedule`, valueString: '100ms,200ms' },
        { url: `${OWN_SD}/subscription-max-attempts`, valueInteger: 3 },
      ],
    }),
  });
  const res = await request(t.app).post('/fhir/Subscription').auth(token, auth).send(sub);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id;
}

async function subscription(id: string): Promise<Subscription> {
  return (await request(t.app).get(`/fhir/Subscription/${id}`).auth(token, auth).expect(200)).body;
}

describe('receiver faults', () => {
  it('retries, dead-letters and recovers each bad receiver as documented, and none delays the others', async () => {
    const subs = new Map<Mode, string>();
    for (const mode of receivers.keys()) subs.set(mode, await subscribe(mode));
    const patientId = (await request(t.app).post('/fhir/Patient').auth(token, auth).send(patient()).expect(201)).body.id;
    // Ten claims in one transaction, so every subscriber has all ten queued before any can fail
    // (a subscription in error queues nothing new).
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: Array.from({ length: 10 }, (_, i) => ({ resource: claim(`Patient/${patientId}`, `receiver-faults-${i}`), request: { method: 'POST', url: 'Claim' } })),
    };
    const written = await request(t.app).post('/fhir').auth(token, auth).send(bundle);
    expect(written.status, JSON.stringify(written.body)).toBe(200);
    const claimIds: string[] = written.body.entry.map((e: { response: { location: string } }) => /Claim\/([^/]+)/.exec(e.response.location)![1]);

    // The healthy subscriber gets all ten, in commit order, while the held one's first request is still open.
    const ok = receivers.get('ok')!;
    const hold = receivers.get('hold')!;
    await waitUntil('the healthy subscriber notified of every claim', () => ok.delivered.length >= 10, 30_000);
    expect(ok.delivered).toEqual(claimIds);
    expect(hold.held).toHaveLength(1);
    expect(hold.requests).toBe(1);

    // Each bad subscriber: its attempts, then the dead letter and the subscription in error.
    const expected: [Mode, number, RegExp][] = [
      ['timeout', 3, /timed out after 1000 ms/],
      ['500', 3, /HTTP 500/],
      ['reset', 3, /socket hang up|ECONNRESET/],
      ['redirect', 1, /HTTP 302/], // a 3xx is an answer, never followed: 10.0.0.1 is not reached
    ];
    for (const [mode, attempts, error] of expected) {
      let sub: Subscription | undefined;
      await waitUntil(`the ${mode} subscription in error`, async () => (sub = await subscription(subs.get(mode)!)).status === 'error', 30_000);
      expect(sub!.error).toMatch(error);
      expect(receivers.get(mode)!.requests, mode).toBe(attempts);
      expect(receivers.get(mode)!.delivered).toEqual([]);
    }

    // Recovery: the receivers mend, $resend requeues the dead letter, and everything arrives in order.
    hold.release();
    hold.mode = 'ok';
    for (const [mode] of expected) {
      receivers.get(mode)!.mode = 'ok';
      const res = await request(t.app).post(`/fhir/Subscription/${subs.get(mode)}/$resend`).auth(token, auth).send({ resourceType: 'Parameters' });
      expect(res.status).toBe(200);
    }
    for (const [mode, r] of receivers) {
      await waitUntil(`${mode} notified of every claim after recovery`, () => r.delivered.length >= 10, 30_000);
      expect(r.delivered, mode).toEqual(claimIds);
      expect((await subscription(subs.get(mode)!)).status).toBe('active');
    }
    console.log(
      'receiver faults: the healthy subscriber got all 10 notifications in order while another held its first request open; ' +
        'slow (1 s timeout), 500 and reset receivers dead-lettered after 3 attempts each, a redirect to 10.0.0.1 not followed and dead at once; ' +
        'after $resend every subscriber got all 10, in order',
    );
  });
});
