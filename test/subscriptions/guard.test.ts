import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeliveryWorker } from '../../src/subscriptions/index.ts';
import { OutboundUrlError, assertPublicEndpoint, guardedLookup, isPublicAddress } from '../../src/net/url-guard.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { startReceiver } from '../support/receiver.ts';
import type { Receiver } from '../support/receiver.ts';
import { classicSubscription } from '../support/subscriptions.ts';
import { startTestWorker } from '../support/worker.ts';

describe('the URL guard', () => {
  it('classifies addresses, IPv4-mapped IPv6 included', () => {
    for (const a of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '::1', 'fe80::1', 'fc00::1', '::ffff:10.0.0.1', '0.0.0.0']) {
      expect(isPublicAddress(a), a).toBe(false);
    }
    for (const a of ['93.184.216.34', '2606:4700::1111']) expect(isPublicAddress(a), a).toBe(true);
  });

  it('refuses non-http(s) and private endpoints unless allowed', async () => {
    await expect(assertPublicEndpoint('ftp://example.org/', false)).rejects.toBeInstanceOf(OutboundUrlError);
    await expect(assertPublicEndpoint('http://127.0.0.1:9/hook', false)).rejects.toThrow(/non-public/);
    await expect(assertPublicEndpoint('http://localhost:9/hook', false)).rejects.toThrow(/non-public/);
    await expect(assertPublicEndpoint('http://[::ffff:169.254.169.254]/latest', false)).rejects.toThrow(/non-public/);
    await expect(assertPublicEndpoint('http://127.0.0.1:9/hook', true)).resolves.toBeUndefined();
  });

  it('checks again at connect time (a name that now resolves inside is refused)', async () => {
    const err = await new Promise<Error | null>((resolve) => guardedLookup('localhost', {}, (e) => resolve(e)));
    expect(err).toBeInstanceOf(OutboundUrlError);
  });
});

describe('subscriptions through the API', () => {
  let t: TestApp;
  let worker: DeliveryWorker;
  let receiver: Receiver;
  beforeAll(async () => {
    t = await startTestApp({ allowPrivateNetworks: false });
    worker = await startTestWorker(t.db);
    receiver = await startReceiver();
  });
  afterAll(async () => {
    await worker.stop();
    await receiver.close();
    await t.close();
  });

  it('puts a subscription to a private endpoint in error, with the reason', async () => {
    const token = await t.token();
    const res = await request(t.app).post('/fhir/Subscription').auth(token, { type: 'bearer' }).send(classicSubscription('Claim?status=active', `${receiver.url}/hook`));
    expect(res.status).toBe(201);
    expect(res.body.status).toBe('error');
    expect(res.body.error).toMatch(/non-public address/);
  });

  it('refuses a subscription to what its owner may not read', async () => {
    const token = await t.token('system/Subscription.cruds system/Patient.rs');
    const res = await request(t.app).post('/fhir/Subscription').auth(token, { type: 'bearer' }).send(classicSubscription('Claim?status=active', 'https://example.org/hook'));
    expect(res.status).toBe(403);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });
});
