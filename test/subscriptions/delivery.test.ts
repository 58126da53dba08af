import { createHmac } from 'node:crypto';
import request from 'supertest';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DeliveryWorker } from '../../src/subscriptions/index.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { CLAIM_ID_SYSTEM, claim, patient } from '../support/fixtures.ts';
import { startReceiver } from '../support/receiver.ts';
import type { Receiver } from '../support/receiver.ts';
import { OWN_SD, TOPIC, backportSubscription, classicSubscription, eventNumbers, statusParam } from '../support/subscriptions.ts';
import { startTestWorker } from '../support/worker.ts';

let t: TestApp;
let token: string;
let worker: DeliveryWorker;
let receiver: Receiver;
let patientId: string;
const SECRET = 'whsec_' + Buffer.from('a-test-secret-of-32-bytes-length').toString('base64');

beforeAll(async () => {
  t = await startTestApp({ allowPrivateNetworks: true });
  token = await t.token();
  worker = await startTestWorker(t.db);
  patientId = (await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).send(patient()).expect(201)).body.id;
});
afterAll(async () => {
  await worker.stop();
  await t.close();
});
beforeEach(async () => {
  await receiver?.close();
  receiver = await startReceiver();
});

async function subscribe(body: object): Promise<any> {
  const res = await request(t.app).post('/fhir/Subscription').auth(token, { type: 'bearer' }).send(body);
  expect(res.status).toBe(201);
  return res.body;
}

async function waitForStatus(id: string, status: string): Promise<any> {
  for (let i = 0; i < 300; i++) {
    const sub = (await request(t.app).get(`/fhir/Subscription/${id}`).auth(token, { type: 'bearer' })).body;
    if (sub.status === status) return sub;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`Subscription/${id} never reached ${status}`);
}

const newClaim = (bill: string): Promise<request.Response> =>
  request(t.app).post('/fhir/Claim').auth(token, { type: 'bearer' }).send(claim(`Patient/${patientId}`, bill)).expect(201);

describe('classic R4 rest-hook', () => {
  it('is activated by the server and pings (empty POST) for matching changes only', async () => {
    const sub = await subscribe(classicSubscription(`Claim?identifier=${CLAIM_ID_SYSTEM}|ping-1`, `${receiver.url}/hook`));
    expect(sub.status).toBe('active');
    await newClaim('ping-other');
    await newClaim('ping-1');
    const [ping] = await receiver.waitFor(1);
    expect(ping.method).toBe('POST');
    expect(ping.url).toBe('/hook');
    expect(ping.body).toBe('');
    await new Promise((r) => setTimeout(r, 200));
    expect(receiver.received).toHaveLength(1);
  });

  it('with a payload, PUTs the resource to [endpoint]/[type]/[id] with channel headers', async () => {
    await subscribe(
      classicSubscription(`Claim?identifier=${CLAIM_ID_SYSTEM}|put-1`, `${receiver.url}/base`, {
        channel: { type: 'rest-hook', endpoint: `${receiver.url}/base`, payload: 'application/fhir+json', header: ['Authorization: Bearer abc'] },
      }),
    );
    const created = await newClaim('put-1');
    const [put] = await receiver.waitFor(1);
    expect(put.method).toBe('PUT');
    expect(put.url).toBe(`/base/Claim/${created.body.id}`);
    expect(put.headers.authorization).toBe('Bearer abc');
    expect(put.headers['content-type']).toBe('application/fhir+json');
    expect(JSON.parse(put.body)).toEqual(created.body);
  });

  it('refuses criteria it cannot evaluate and channels it cannot deliver to', async () => {
    expect((await request(t.app).post('/fhir/Subscription').auth(token, { type: 'bearer' }).send(classicSubscription('Claim?colour=red', receiver.url))).status).toBe(400);
    expect((await request(t.app).post('/fhir/Subscription').auth(token, { type: 'bearer' }).send(classicSubscription('Claim?status=active', 'ftp://example.org/x'))).status).toBe(400);
  });
});

describe('Backport IG notifications', () => {
  it('handshakes, then sends numbered id-only history bundles for the topic and its filter', async () => {
    const sub = await subscribe(backportSubscription('claim-changed', receiver.url, { filters: [`Claim?identifier=${CLAIM_ID_SYSTEM}|bp-1`] }));
    expect(sub.status).toBe('requested');
    const [handshake] = await receiver.waitFor(1);
    const hs = JSON.parse(handshake.body);
    expect(hs.type).toBe('history');
    expect(statusParam(hs, 'type').valueCode).toBe('handshake');
    expect(statusParam(hs, 'events-since-subscription-start').valueString).toBe('0');
    await waitForStatus(sub.id, 'active');

    const created = await newClaim('bp-1');
    await newClaim('bp-not-me');
    const [, note] = await receiver.waitFor(2);
    const bundle = JSON.parse(note.body);
    expect(note.headers['content-type']).toBe('application/fhir+json');
    expect(bundle.entry[0].resource.resourceType).toBe('Parameters');
    expect(statusParam(bundle, 'type').valueCode).toBe('event-notification');
    expect(statusParam(bundle, 'topic').valueCanonical).toBe(TOPIC('claim-changed'));
    expect(eventNumbers(bundle)).toEqual([1]);
    expect(bundle.entry[1].fullUrl).toMatch(new RegExp(`/Claim/${created.body.id}$`));
    expect(bundle.entry[1].resource).toBeUndefined();
  });

  it("a client's active is a request: the handshake comes first; keeping it active shakes hands again only for a new endpoint", async () => {
    const filters = [`Claim?identifier=${CLAIM_ID_SYSTEM}|bp-asked-active`];
    const sub = await subscribe({ ...backportSubscription('claim-changed', receiver.url, { filters }), status: 'active' });
    expect(sub.status).toBe('requested');
    const [handshake] = await receiver.waitFor(1);
    expect(statusParam(JSON.parse(handshake.body), 'type').valueCode).toBe('handshake');
    const active = await waitForStatus(sub.id, 'active');

    const kept = await request(t.app).put(`/fhir/Subscription/${sub.id}`).auth(token, { type: 'bearer' }).send({ ...active, reason: 'edited' });
    expect(kept.status).toBe(200);
    expect(kept.body.status).toBe('active');
    await newClaim('bp-asked-active');
    const [, note] = await receiver.waitFor(2);
    expect(statusParam(JSON.parse(note.body), 'type').valueCode).toBe('event-notification');

    const moved = await request(t.app).put(`/fhir/Subscription/${sub.id}`).auth(token, { type: 'bearer' })
      .send({ ...kept.body, channel: { ...kept.body.channel, endpoint: `${receiver.url}/moved` } });
    expect(moved.status).toBe(200);
    expect(moved.body.status).toBe('requested');
    const [, , again] = await receiver.waitFor(3);
    expect(again.url).toBe('/moved');
    expect(statusParam(JSON.parse(again.body), 'type').valueCode).toBe('handshake');
    await waitForStatus(sub.id, 'active');
  });

  it('full-resource carries the version that changed; empty carries no focus', async () => {
    const full = await subscribe(backportSubscription('claim-changed', `${receiver.url}/full`, { content: 'full-resource', filters: [`identifier=${CLAIM_ID_SYSTEM}|bp-full`] }));
    const empty = await subscribe(backportSubscription('claim-changed', `${receiver.url}/empty`, { content: 'empty', filters: [`identifier=${CLAIM_ID_SYSTEM}|bp-full`] }));
    await waitForStatus(full.id, 'active');
    await waitForStatus(empty.id, 'active');
    const created = await newClaim('bp-full');
    await receiver.waitFor(4);
    const byPath = (p: string) => receiver.received.filter((r) => r.url === p).map((r) => JSON.parse(r.body)).at(-1);
    expect(byPath('/full').entry[1].resource).toEqual(created.body);
    const emptyBundle = byPath('/empty');
    expect(emptyBundle.entry).toHaveLength(1);
    const event = emptyBundle.entry[0].resource.parameter.find((p: any) => p.name === 'notification-event');
    expect(event.part.find((p: any) => p.name === 'focus')).toBeUndefined();
  });

  it('claim-adjudicated matches ClaimResponse use=claim only', async () => {
    const sub = await subscribe(backportSubscription('claim-adjudicated', receiver.url));
    await waitForStatus(sub.id, 'active');
    const response = (use: string) => ({
      resourceType: 'ClaimResponse',
      status: 'active',
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
      use,
      patient: { reference: `Patient/${patientId}` },
      created: '2024-02-01',
      insurer: { display: 'Payer' },
      outcome: 'complete',
    });
    await request(t.app).post('/fhir/ClaimResponse').auth(token, { type: 'bearer' }).send(response('preauthorization')).expect(201);
    const adjudication = await request(t.app).post('/fhir/ClaimResponse').auth(token, { type: 'bearer' }).send(response('claim')).expect(201);
    const [, note] = await receiver.waitFor(2);
    expect(JSON.parse(note.body).entry[1].fullUrl).toMatch(new RegExp(`/ClaimResponse/${adjudication.body.id}$`));
    await new Promise((r) => setTimeout(r, 200));
    expect(receiver.received).toHaveLength(2);
  });

  it('refuses an unknown topic', async () => {
    const res = await request(t.app).post('/fhir/Subscription').auth(token, { type: 'bearer' }).send(backportSubscription('no-such-topic', receiver.url));
    expect(res.status).toBe(400);
  });
});

describe('signatures', () => {
  it('standard-webhooks headers verify with the standardwebhooks library; webhook-id is stable across retries', async () => {
    receiver.respond([500], 200);
    await subscribe(
      classicSubscription(`Claim?identifier=${CLAIM_ID_SYSTEM}|sig-1`, receiver.url, {
        extension: [{ url: `${OWN_SD}/subscription-secret`, valueString: SECRET }],
        channel: { type: 'rest-hook', endpoint: receiver.url, payload: 'application/fhir+json' },
      }),
    );
    await newClaim('sig-1');
    const [first, second] = await receiver.waitFor(2);
    const webhook = new Webhook(SECRET);
    for (const r of [first, second]) {
      const headers = { 'webhook-id': String(r.headers['webhook-id']), 'webhook-timestamp': String(r.headers['webhook-timestamp']), 'webhook-signature': String(r.headers['webhook-signature']) };
      expect(() => webhook.verify(r.body, headers)).not.toThrow();
    }
    expect(second.headers['webhook-id']).toBe(first.headers['webhook-id']);
    expect(() =>
      webhook.verify(first.body + ' ', {
        'webhook-id': String(first.headers['webhook-id']),
        'webhook-timestamp': String(first.headers['webhook-timestamp']),
        'webhook-signature': String(first.headers['webhook-signature']),
      }),
    ).toThrow();
  });

  it('x-sender-signature is the hex HMAC-SHA256 of the timestamp and the body', async () => {
    const secret = 'tyro-style-secret-token';
    await subscribe(
      classicSubscription(`Claim?identifier=${CLAIM_ID_SYSTEM}|sig-2`, receiver.url, {
        extension: [
          { url: `${OWN_SD}/subscription-secret`, valueString: secret },
          { url: `${OWN_SD}/subscription-signature-scheme`, valueCode: 'x-sender-signature' },
        ],
        channel: { type: 'rest-hook', endpoint: receiver.url, payload: 'application/fhir+json' },
      }),
    );
    await newClaim('sig-2');
    const [r] = await receiver.waitFor(1);
    const timestamp = String(r.headers['x-sender-timestamp']);
    expect(new Date(timestamp).toISOString()).toBe(timestamp);
    expect(r.headers['x-sender-signature']).toBe(createHmac('sha256', secret).update(timestamp + r.body).digest('hex'));
    expect(r.headers['webhook-signature']).toBeUndefined();
  });

  it('x-curacel-signature is the hex HMAC-SHA256 of the exact body bytes sent', async () => {
    const secret = 'curacel-style-secret';
    await subscribe(
      classicSubscription(`Claim?identifier=${CLAIM_ID_SYSTEM}|sig-3`, receiver.url, {
        extension: [
          { url: `${OWN_SD}/subscription-secret`, valueString: secret },
          { url: `${OWN_SD}/subscription-signature-scheme`, valueCode: 'x-curacel-signature' },
        ],
        channel: { type: 'rest-hook', endpoint: receiver.url, payload: 'application/fhir+json' },
      }),
    );
    await newClaim('sig-3');
    const [r] = await receiver.waitFor(1);
    expect(r.headers['x-curacel-signature']).toBe(createHmac('sha256', secret).update(r.body).digest('hex'));
    expect(r.headers['webhook-signature']).toBeUndefined();
  });

  it('refuses an unknown payload format or signature scheme when the Subscription is written', async () => {
    for (const [url, valueCode, problem] of [
      ['subscription-payload-format', 'carrier-pigeon', /Unknown payload format 'carrier-pigeon': one of fhir/],
      ['subscription-signature-scheme', 'rot13', /Unknown signature scheme 'rot13'/],
    ] as const) {
      const res = await request(t.app)
        .post('/fhir/Subscription')
        .set('Authorization', `Bearer ${token}`)
        .send(classicSubscription(`Claim?identifier=${CLAIM_ID_SYSTEM}|fmt`, receiver.url, { extension: [{ url: `${OWN_SD}/${url}`, valueCode }] }));
      expect(res.status).toBe(400);
      expect(JSON.stringify(res.body.issue)).toMatch(problem);
    }
  });
});

describe('retries, dead letters and recovery', () => {
  it('retries 5xx and 429 until it succeeds, recording every attempt', async () => {
    receiver.respond([503, 429], 200, { 'Retry-After': '0' });
    const sub = await subscribe(classicSubscription(`Claim?identifier=${CLAIM_ID_SYSTEM}|retry-1`, receiver.url));
    await newClaim('retry-1');
    await receiver.waitFor(3);
    await new Promise((r) => setTimeout(r, 100));
    const attempts = await t.db.query<{ http_status: number }>(
      'SELECT http_status FROM delivery_attempt WHERE subscription_id = $1 ORDER BY id',
      [sub.id],
    );
    expect(attempts.map((a) => a.http_status)).toEqual([503, 429, 200]);
  });

  it('dead-letters when attempts run out, sets the subscription to error, and $resend recovers it and what came meanwhile', async () => {
    receiver.respond([], 500);
    const sub = await subscribe(
      classicSubscription(`Claim?identifier=${CLAIM_ID_SYSTEM}|dead-1`, receiver.url, {
        extension: [{ url: `${OWN_SD}/subscription-max-attempts`, valueInteger: 2 }],
        channel: { type: 'rest-hook', endpoint: receiver.url, payload: 'application/fhir+json' },
      }),
    );
    const first = (await newClaim('dead-1')).body;
    const errored = await waitForStatus(sub.id, 'error');
    expect(errored.error).toContain('HTTP 500');
    expect(receiver.received).toHaveLength(2);
    // Written while the subscription is in error: kept behind the dead letter, not lost, not sent yet.
    const second = (await newClaim('dead-1')).body;
    await new Promise((r) => setTimeout(r, 300));
    expect(receiver.received).toHaveLength(2);

    receiver.respond([], 200);
    const resend = await request(t.app).post(`/fhir/Subscription/${sub.id}/$resend`).auth(token, { type: 'bearer' }).send({ resourceType: 'Parameters' });
    expect(resend.status).toBe(200);
    expect(resend.body.parameter[0].valueInteger).toBe(1);
    await waitForStatus(sub.id, 'active');
    const received = await receiver.waitFor(4);
    expect(received.slice(2).map((r) => JSON.parse(r.body).id)).toEqual([first.id, second.id]);
  });

  it('a 4xx other than 408/429 is final at once', async () => {
    receiver.respond([], 404);
    const sub = await subscribe(classicSubscription(`Claim?identifier=${CLAIM_ID_SYSTEM}|final-1`, receiver.url));
    await newClaim('final-1');
    await waitForStatus(sub.id, 'error');
    expect(receiver.received).toHaveLength(1);
  });
});

describe('ordering, $status and $events', () => {
  it('delivers 50 quick updates in commit order, then replays them by number', async () => {
    const sub = await subscribe(backportSubscription('claim-changed', receiver.url, { filters: [`identifier=${CLAIM_ID_SYSTEM}|order-1`] }));
    await waitForStatus(sub.id, 'active');
    const created = (await newClaim('order-1')).body;
    let current = created;
    for (let i = 0; i < 49; i++) {
      current = (await request(t.app).put(`/fhir/Claim/${created.id}`).auth(token, { type: 'bearer' }).send({ ...current, total: { value: i, currency: 'USD' } }).expect(200)).body;
    }
    const received = await receiver.waitFor(51, 20_000);
    const numbers = received.slice(1).flatMap((r) => eventNumbers(JSON.parse(r.body)));
    expect(numbers).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));

    const status = await request(t.app).get(`/fhir/Subscription/${sub.id}/$status`).auth(token, { type: 'bearer' });
    expect(status.status).toBe(200);
    const params = status.body.entry[0].resource.parameter;
    expect(params.find((p: any) => p.name === 'events-since-subscription-start').valueString).toBe('50');
    expect(params.find((p: any) => p.name === 'type').valueCode).toBe('query-status');

    const replay = await request(t.app).get(`/fhir/Subscription/${sub.id}/$events?eventsSinceNumber=10&eventsUntilNumber=12&content=full-resource`).auth(token, { type: 'bearer' });
    expect(replay.status).toBe(200);
    expect(eventNumbers(replay.body)).toEqual([10, 11, 12]);
    expect(replay.body.entry.slice(1).map((e: any) => e.resource.meta.versionId)).toEqual(['10', '11', '12']);
  });
});

describe('heartbeats and topics', () => {
  it('sends heartbeats at the heartbeat period', async () => {
    const sub = await subscribe(backportSubscription('patient-credit', receiver.url, { heartbeatSeconds: 1 }));
    await waitForStatus(sub.id, 'active');
    const [, heartbeat] = await receiver.waitFor(2, 5000);
    expect(statusParam(JSON.parse(heartbeat.body), 'type').valueCode).toBe('heartbeat');
  });

  it('serves its topics and lists them in the CapabilityStatement', async () => {
    const topic = await request(t.app).get('/fhir/SubscriptionTopic/claim-adjudicated').auth(token, { type: 'bearer' });
    expect(topic.status).toBe(200);
    expect(topic.body.url).toBe(TOPIC('claim-adjudicated'));
    expect((await request(t.app).get('/fhir/SubscriptionTopic').auth(token, { type: 'bearer' })).body.total).toBe(5);
    const cs = await request(t.app).get('/fhir/metadata').auth(token, { type: 'bearer' });
    const subscription = cs.body.rest[0].resource.find((r: any) => r.type === 'Subscription');
    expect(subscription.extension.map((e: any) => e.valueCanonical)).toContain(TOPIC('patient-payment'));
  });
});

describe('tenants', () => {
  it("a subscription never hears of another tenant's changes", async () => {
    const a = await t.token(undefined, 'tenant-a');
    const b = await t.token(undefined, 'tenant-b');
    const sub = await request(t.app).post('/fhir/Subscription').auth(a, { type: 'bearer' }).send(classicSubscription(`Claim?identifier=${CLAIM_ID_SYSTEM}|`, `${receiver.url}/a`)).expect(201);
    for (const [token, bill] of [[b, 'tenant-b-bill'], [a, 'tenant-a-bill']]) {
      const p = await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).send(patient()).expect(201);
      await request(t.app).post('/fhir/Claim').auth(token, { type: 'bearer' }).send(claim(`Patient/${p.body.id}`, bill)).expect(201);
    }
    await receiver.waitFor(1);
    await new Promise((r) => setTimeout(r, 300));
    expect(receiver.received).toHaveLength(1);
    const queued = await t.db.query<{ tenant_id: string }>('SELECT tenant_id FROM subscription_notification WHERE subscription_id = $1', [sub.body.id]);
    expect(queued.map((r) => r.tenant_id)).toEqual(['tenant-a']);
  });
});
