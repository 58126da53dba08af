import request from 'supertest';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DeliveryWorker } from '../../src/subscriptions/index.ts';
import type { Subscription } from '@medplum/fhirtypes';
import { REDACTED_SECRET } from '../../src/subscriptions/index.ts';
import { parseSubscription } from '../../src/subscriptions/definition.ts';
import { renderDelivery } from '../../src/subscriptions/render.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { CLAIM_ID_SYSTEM, claim, patient } from '../support/fixtures.ts';
import { startReceiver } from '../support/receiver.ts';
import type { Receiver } from '../support/receiver.ts';
import { OWN_SD, classicSubscription } from '../support/subscriptions.ts';
import { startTestWorker } from '../support/worker.ts';

/** A Subscription's signing secret is write-only: shown in the answer to the write that sent it, never after. */
let t: TestApp;
let token: string;
let worker: DeliveryWorker;
let receiver: Receiver;
let patientId: string;
const SECRET = 'whsec_' + Buffer.from('write-only-secret-of-32-bytes-ok').toString('base64');
const SECRET_URL = `${OWN_SD}/subscription-secret`;

beforeAll(async () => {
  t = await startTestApp({ allowPrivateNetworks: true });
  token = await t.token();
  worker = await startTestWorker(t.db);
  patientId = (await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).send(patient()).expect(201)).body.id;
});
afterAll(async () => {
  await worker.stop();
  await receiver?.close();
  await t.close();
});
beforeEach(async () => {
  await receiver?.close();
  receiver = await startReceiver();
});

const auth = (r: request.Test, as = token) => r.auth(as, { type: 'bearer' });
const signed = (bill: string, secret = SECRET) =>
  classicSubscription(`Claim?identifier=${CLAIM_ID_SYSTEM}|${bill}`, receiver.url, {
    extension: [{ url: SECRET_URL, valueString: secret }],
    channel: { type: 'rest-hook', endpoint: receiver.url, payload: 'application/fhir+json' },
  });
const secretOf = (sub: any): string | undefined => sub?.extension?.find((e: any) => e.url === SECRET_URL)?.valueString;

async function deliveredWith(bill: string, secret: string): Promise<void> {
  await auth(request(t.app).post('/fhir/Claim')).send(claim(`Patient/${patientId}`, bill)).expect(201);
  const [note] = await receiver.waitFor(1);
  const headers = { 'webhook-id': String(note.headers['webhook-id']), 'webhook-timestamp': String(note.headers['webhook-timestamp']), 'webhook-signature': String(note.headers['webhook-signature']) };
  expect(() => new Webhook(secret).verify(note.body, headers)).not.toThrow();
}

describe('the signing secret is write-only', () => {
  it('is shown to the create that sent it, and masked on read, vread, search, history and in Bundles', async () => {
    const created = await auth(request(t.app).post('/fhir/Subscription')).send(signed('wo-1'));
    expect(created.status).toBe(201);
    expect(secretOf(created.body)).toBe(SECRET);
    const id = created.body.id;

    const reader = await t.token('system/Subscription.rs');
    const answers = [
      await auth(request(t.app).get(`/fhir/Subscription/${id}`), reader),
      await auth(request(t.app).get(`/fhir/Subscription/${id}/_history/1`), reader),
      await auth(request(t.app).get(`/fhir/Subscription?_id=${id}`), reader),
      await auth(request(t.app).get(`/fhir/Subscription/${id}/_history`), reader),
      await auth(request(t.app).get('/fhir/Subscription/_history'), reader),
      await auth(request(t.app).post('/fhir/Subscription/_search'), reader).type('form').send({ _id: id }),
      await auth(request(t.app).post('/fhir'), reader).send({
        resourceType: 'Bundle', type: 'batch',
        entry: [{ request: { method: 'GET', url: `Subscription/${id}` } }, { request: { method: 'GET', url: `Subscription?_id=${id}` } }],
      }),
    ];
    for (const [i, res] of answers.entries()) {
      expect(res.status, `answer ${i}`).toBe(200);
      const text = JSON.stringify(res.body);
      expect(text, `answer ${i}`).not.toContain(SECRET);
      expect(text, `answer ${i}`).toContain(REDACTED_SECRET);
    }
    expect(secretOf(answers[0].body)).toBe(REDACTED_SECRET);
    // the stored value is intact, for the delivery worker
    await deliveredWith('wo-1', SECRET);
  });

  it('a read, edited and written back, keeps the secret; the update answer does not show it', async () => {
    const id = (await auth(request(t.app).post('/fhir/Subscription')).send(signed('wo-2')).expect(201)).body.id;
    const read = (await auth(request(t.app).get(`/fhir/Subscription/${id}`))).body;
    const put = await auth(request(t.app).put(`/fhir/Subscription/${id}`)).send({ ...read, reason: 'edited' });
    expect(put.status).toBe(200);
    expect(secretOf(put.body)).toBe(REDACTED_SECRET);
    const patched = await auth(request(t.app).patch(`/fhir/Subscription/${id}`)).type('application/json-patch+json')
      .send([{ op: 'replace', path: '/reason', value: 'patched' }]);
    expect(patched.status).toBe(200);
    expect(secretOf(patched.body)).toBe(REDACTED_SECRET);
    await deliveredWith('wo-2', SECRET);
  });

  it('a JSON Patch test cannot confirm a guess: the patch sees the mask, right guess or wrong', async () => {
    const id = (await auth(request(t.app).post('/fhir/Subscription')).send(signed('wo-guess')).expect(201)).body.id;
    const index = (await auth(request(t.app).get(`/fhir/Subscription/${id}`))).body.extension.findIndex((e: any) => e.url === SECRET_URL);
    const probe = (guess: string) =>
      auth(request(t.app).patch(`/fhir/Subscription/${id}`)).type('application/json-patch+json')
        .send([{ op: 'test', path: `/extension/${index}/valueString`, value: guess }, { op: 'replace', path: '/reason', value: 'probe' }]);
    const right = await probe(SECRET);
    const wrong = await probe('whsec_' + Buffer.from('not-the-secret-at-all-32-bytes!!').toString('base64'));
    expect(right.status).toBeGreaterThanOrEqual(400);
    expect(right.status).toBe(wrong.status);
    // Patching the masked copy keeps the stored secret: deliveries are still signed with it.
    const edit = await auth(request(t.app).patch(`/fhir/Subscription/${id}`)).type('application/json-patch+json')
      .send([{ op: 'test', path: `/extension/${index}/valueString`, value: REDACTED_SECRET }, { op: 'replace', path: '/reason', value: 'edited' }]);
    expect(edit.status).toBe(200);
    await deliveredWith('wo-guess', SECRET);
  });

  it('a new secret is shown to the update that sets it, then masked; the new one signs', async () => {
    const id = (await auth(request(t.app).post('/fhir/Subscription')).send(signed('wo-3')).expect(201)).body.id;
    const NEW = 'whsec_' + Buffer.from('a-rotated-subscription-secret-32').toString('base64');
    const put = await auth(request(t.app).put(`/fhir/Subscription/${id}`)).send({ ...signed('wo-3', NEW), id });
    expect(put.status).toBe(200);
    expect(secretOf(put.body)).toBe(NEW);
    expect(secretOf((await auth(request(t.app).get(`/fhir/Subscription/${id}`))).body)).toBe(REDACTED_SECRET);
    await deliveredWith('wo-3', NEW);
  });

  it('in a transaction the answer shows only the secret that entry sent', async () => {
    const existing = (await auth(request(t.app).post('/fhir/Subscription')).send(signed('wo-4')).expect(201)).body.id;
    const OTHER = 'whsec_' + Buffer.from('another-subscriptions-secret-32b').toString('base64');
    const res = await auth(request(t.app).post('/fhir')).set('Prefer', 'return=representation').send({
      resourceType: 'Bundle', type: 'transaction',
      entry: [
        { fullUrl: 'urn:uuid:0b7c6b70-6c44-4d4b-9d87-0a7b5d1f6e01', resource: signed('wo-5', OTHER), request: { method: 'POST', url: 'Subscription' } },
        { request: { method: 'GET', url: `Subscription/${existing}` } },
      ],
    });
    expect(res.status).toBe(200);
    const text = JSON.stringify(res.body);
    expect(text).not.toContain(SECRET);
    expect(secretOf(res.body.entry[0].resource)).toBe(OTHER);
  });

  it('the mask cannot be written where no secret is stored', async () => {
    const res = await auth(request(t.app).post('/fhir/Subscription')).send(signed('wo-6', REDACTED_SECRET));
    expect(res.status).toBe(400);
    expect(res.body.issue[0].details.text).toMatch(/write-only/);
  });

  it('is masked in notification payloads too (writes of Subscriptions notify nobody today; this holds if they ever do)', () => {
    const sub = { ...signed('wo-7'), id: 'watched' } as Subscription;
    const event = { eventNumber: 1, occurredAt: new Date(), resourceType: 'Subscription', resourceId: 'watched', interaction: 'update', resource: sub };
    const config = (kind: 'classic' | 'backport') => ({ ...parseSubscription(signed('x')), kind, content: 'full-resource' as const });
    const classic = renderDelivery('event-notification', { subscriptionUrl: 'http://h/fhir/Subscription/s', status: 'active', config: config('classic'), eventsSinceStart: 1 }, event);
    const backport = renderDelivery('event-notification', { subscriptionUrl: 'http://h/fhir/Subscription/s', status: 'active', config: config('backport'), eventsSinceStart: 1 }, event);
    for (const out of [classic, backport]) {
      expect(out.body).not.toContain(SECRET);
      expect(out.body).toContain(REDACTED_SECRET);
    }
    expect(secretOf(sub)).toBe(SECRET); // masked copies; the version itself is untouched
  });
});

describe('an answer is no guessing oracle for the stored secret', () => {
  const GUESS_OK = SECRET; // a right guess: shown, before the fix, wherever the request carried it

  it('a JSON Patch that carries the guess anywhere but the secret itself answers with the mask', async () => {
    const id = (await auth(request(t.app).post('/fhir/Subscription')).send(signed('wo-oracle-1')).expect(201)).body.id;
    const res = await auth(request(t.app).patch(`/fhir/Subscription/${id}`)).type('application/json-patch+json')
      .send([{ op: 'replace', path: '/reason', value: GUESS_OK }]);
    expect(res.status).toBe(200);
    expect(secretOf(res.body)).toBe(REDACTED_SECRET);
    expect(res.body.reason).toBe(GUESS_OK); // the client's own value, in its own place
    await deliveredWith('wo-oracle-1', SECRET);
  });

  it('a JSON Patch that writes a new secret to its place is shown it, once', async () => {
    const id = (await auth(request(t.app).post('/fhir/Subscription')).send(signed('wo-oracle-2')).expect(201)).body.id;
    const index = (await auth(request(t.app).get(`/fhir/Subscription/${id}`))).body.extension.findIndex((e: any) => e.url === SECRET_URL);
    const NEW = 'whsec_' + Buffer.from('a-patched-subscription-secret-32').toString('base64');
    const res = await auth(request(t.app).patch(`/fhir/Subscription/${id}`)).type('application/json-patch+json')
      .send([{ op: 'replace', path: `/extension/${index}/valueString`, value: NEW }]);
    expect(res.status).toBe(200);
    expect(secretOf(res.body)).toBe(NEW);
    expect(secretOf((await auth(request(t.app).get(`/fhir/Subscription/${id}`))).body)).toBe(REDACTED_SECRET);
    await deliveredWith('wo-oracle-2', NEW);
  });

  it('a batch that sends the guess in one entry does not unmask another entry', async () => {
    const id = (await auth(request(t.app).post('/fhir/Subscription')).send(signed('wo-oracle-3')).expect(201)).body.id;
    const res = await auth(request(t.app).post('/fhir')).send({
      resourceType: 'Bundle', type: 'batch',
      entry: [
        { resource: signed('wo-oracle-3b', GUESS_OK), request: { method: 'POST', url: 'Subscription' } },
        { request: { method: 'GET', url: `Subscription/${id}` } },
      ],
    });
    expect(res.status).toBe(200);
    expect(res.body.entry[0].response.status).toMatch(/^201/);
    expect(secretOf(res.body.entry[1].resource)).toBe(REDACTED_SECRET);
  });

  it('a conditional create that finds the Subscription answers it masked, whatever secret it sent', async () => {
    const id = (await auth(request(t.app).post('/fhir/Subscription')).send(signed('wo-oracle-4')).expect(201)).body.id;
    const res = await auth(request(t.app).post('/fhir/Subscription')).set('If-None-Exist', `_id=${id}`).send(signed('wo-oracle-4', GUESS_OK));
    expect(res.status).toBe(200);
    expect(res.body.id).toBe(id);
    expect(secretOf(res.body)).toBe(REDACTED_SECRET);
  });

  it('a write that keeps the stored secret and sends the guess in a second secret extension shows neither', async () => {
    const id = (await auth(request(t.app).post('/fhir/Subscription')).send(signed('wo-oracle-5')).expect(201)).body.id;
    const read = (await auth(request(t.app).get(`/fhir/Subscription/${id}`))).body;
    const MEDPLUM_URL = 'https://www.medplum.com/fhir/StructureDefinition/subscription-secret';
    const res = await auth(request(t.app).put(`/fhir/Subscription/${id}`)).send({ ...read, extension: [...read.extension, { url: MEDPLUM_URL, valueString: GUESS_OK }] });
    expect(res.status).toBe(200);
    expect(JSON.stringify(res.body)).not.toContain(SECRET);
  });
});
