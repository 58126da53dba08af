import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeliveryWorker } from '../../src/subscriptions/index.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { CLAIM_ID_SYSTEM, claim, patient } from '../support/fixtures.ts';
import { startReceiver } from '../support/receiver.ts';
import type { Receiver } from '../support/receiver.ts';
import { backportSubscription, eventNumbers } from '../support/subscriptions.ts';
import { startTestWorker } from '../support/worker.ts';

let t: TestApp;
let token: string;
let workers: DeliveryWorker[];
let receiver: Receiver;

beforeAll(async () => {
  t = await startTestApp({ allowPrivateNetworks: true });
  token = await t.token();
  workers = await Promise.all([startTestWorker(t.db), startTestWorker(t.db)]);
  receiver = await startReceiver();
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await receiver.close();
  await t.close();
});

describe('several workers', () => {
  it('deliver every event exactly once, in order per subscription', async () => {
    const patientId = (await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).send(patient()).expect(201)).body.id;
    const subs = [];
    for (const path of ['/a', '/b', '/c']) {
      const sub = await request(t.app).post('/fhir/Subscription').auth(token, { type: 'bearer' }).send(backportSubscription('claim-changed', `${receiver.url}${path}`)).expect(201);
      subs.push(sub.body.id);
    }
    await receiver.waitFor(3); // handshakes
    for (let i = 0; i < 60; i++) {
      const sub = await request(t.app).get(`/fhir/Subscription/${subs[i % 3]}`).auth(token, { type: 'bearer' });
      if (sub.body.status === 'active') continue;
      await new Promise((r) => setTimeout(r, 20));
      i--;
      if (i > 300) throw new Error('subscriptions did not activate');
    }
    // 30 claims at once: concurrent writers, matched by all three subscriptions.
    await Promise.all(
      Array.from({ length: 30 }, (_, i) => request(t.app).post('/fhir/Claim').auth(token, { type: 'bearer' }).send(claim(`Patient/${patientId}`, `multi-${i}`)).expect(201)),
    );
    await receiver.waitFor(3 + 90, 20_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(receiver.received).toHaveLength(93);
    for (const path of ['/a', '/b', '/c']) {
      const bodies = receiver.received.filter((r) => r.url === path).map((r) => JSON.parse(r.body));
      const numbers = bodies.slice(1).flatMap(eventNumbers);
      expect(numbers).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
      const ids = new Set(receiver.received.filter((r) => r.url === path).map((r) => r.headers['webhook-id']));
      expect(ids.size).toBeLessThanOrEqual(31);
    }
    const claimIds = new Set(
      receiver.received.filter((r) => r.url === '/a').slice(1).map((r) => JSON.parse(r.body).entry[1].fullUrl),
    );
    expect(claimIds.size).toBe(30);
    expect(CLAIM_ID_SYSTEM).toBeTruthy();
  });
});
