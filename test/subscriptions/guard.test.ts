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
  // Table-driven: no traffic is sent to any of these; the guard decides from the address alone.
  const NOT_PUBLIC: [string, string][] = [
    ['127.0.0.1', 'loopback'], ['127.1', 'loopback, short form'], ['2130706433', 'loopback as one decimal'],
    ['0x7f.1', 'loopback in hex'], ['0x7f000001', 'loopback as one hex number'], ['0177.0.0.1', 'loopback in octal'],
    ['10.1.2.3', 'RFC 1918'], ['172.16.0.1', 'RFC 1918'], ['192.168.1.1', 'RFC 1918'], ['0300.0250.1.1', '192.168.1.1 in octal'],
    ['169.254.169.254', 'link-local (cloud metadata)'], ['100.64.0.1', 'CGNAT 100.64/10'], ['100.127.255.254', 'CGNAT 100.64/10'],
    ['0.0.0.0', 'unspecified'], ['0.1.2.3', 'this network 0/8'], ['224.0.0.1', 'multicast'], ['239.255.255.250', 'multicast'],
    ['255.255.255.255', 'broadcast'], ['240.0.0.1', 'reserved'], ['192.0.2.1', 'documentation'], ['198.18.0.1', 'benchmarking'],
    ['::1', 'IPv6 loopback'], ['::', 'IPv6 unspecified'], ['fe80::1', 'IPv6 link-local'], ['fc00::1', 'unique-local'],
    ['fd12:3456::1', 'unique-local'], ['fec0::1', 'site-local (deprecated)'], ['ff02::1', 'IPv6 multicast'], ['100::1', 'discard'],
    ['2001:db8::1', 'IPv6 documentation'],
    ['::127.0.0.1', 'IPv4-compatible loopback'], ['::7f00:1', 'IPv4-compatible loopback, hex'], ['::8.8.8.8', 'IPv4-compatible (deprecated)'],
    ['::ffff:127.0.0.1', 'IPv4-mapped loopback'], ['::ffff:7f00:1', 'IPv4-mapped loopback, hex'], ['::ffff:10.0.0.1', 'IPv4-mapped private'],
    ['::ffff:169.254.169.254', 'IPv4-mapped metadata'], ['0:0:0:0:0:ffff:7f00:1', 'IPv4-mapped, long form'],
    ['::ffff:0:7f00:1', 'IPv4-translated loopback'], ['64:ff9b::7f00:1', 'NAT64 of loopback'], ['64:ff9b::a9fe:a9fe', 'NAT64 of metadata'],
    ['64:ff9b:1::808:808', 'local-use NAT64'], ['2002:7f00:1::1', '6to4 of loopback'], ['2002:a00:1::1', '6to4 of 10.0.0.1'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'Teredo'],
    ['not-an-address', 'not an IP'], ['', 'empty'],
  ];
  const PUBLIC = ['93.184.216.34', '8.8.8.8', '2606:4700::1111', '2a00:1450:4001:80b::200e', '::ffff:8.8.8.8', '64:ff9b::808:808', '2002:808:808::1'];

  it.each(NOT_PUBLIC)('%s (%s) is not public', (address) => {
    expect(isPublicAddress(address)).toBe(false);
  });
  it.each(PUBLIC)('%s is public', (address) => {
    expect(isPublicAddress(address)).toBe(true);
  });

  it.each([
    'http://[::127.0.0.1]/hook', 'http://[::ffff:127.0.0.1]/hook', 'http://[::ffff:7f00:1]/hook', 'http://[64:ff9b::7f00:1]/hook',
    'http://[2002:7f00:1::1]/hook', 'http://2130706433/hook', 'http://0x7f.1/hook', 'http://0177.0.0.1/hook', 'http://0/hook',
    'http://0.0.0.0:8080/hook', 'http://[::]/hook', 'http://[fe80::1%25eth0]/hook', 'http://100.64.0.1/hook', 'http://[ff02::1]/hook',
  ])('refuses the endpoint %s', async (endpoint) => {
    await expect(assertPublicEndpoint(endpoint, false)).rejects.toBeInstanceOf(OutboundUrlError);
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

  it("checks the endpoint of a client's active as it checks requested, on create and on an update that turns it on", async () => {
    const token = await t.token();
    const created = await request(t.app).post('/fhir/Subscription').auth(token, { type: 'bearer' })
      .send(classicSubscription('Claim?status=active', `${receiver.url}/hook`, { status: 'active' }));
    expect(created.status).toBe(201);
    expect(created.body.status).toBe('error');
    expect(created.body.error).toMatch(/non-public address/);

    const off = await request(t.app).post('/fhir/Subscription').auth(token, { type: 'bearer' })
      .send(classicSubscription('Claim?status=active', `${receiver.url}/hook`, { status: 'off' }));
    expect(off.body.status).toBe('off');
    const on = await request(t.app).put(`/fhir/Subscription/${off.body.id}`).auth(token, { type: 'bearer' }).send({ ...off.body, status: 'active' });
    expect(on.status).toBe(200);
    expect(on.body.status).toBe('error');
    expect(on.body.error).toMatch(/non-public address/);
  });

  it.each([
    ['Bad Header: x', /not a valid HTTP header name/],
    ['X-Ok: a\r\nX-Injected: b', /CR, LF/],
    // FHIR's own string rule already refuses these (it allows no controls but CR, LF and tab)
    ['X-Nul: a\u0000b', /CR, LF, NUL|Invalid string format|NUL character/],
    ['X-Ctl: a\u0007b', /controls|Invalid string format/],
    ['X\r\nInjected: b', /not a valid HTTP header name/],
    ['X-Wide: \u20ac', /cannot hold/],
    ['Content-Length: 0', /server sets it/],
    ['Host: internal.example', /server sets it/],
    ['webhook-signature: v1,forged', /server sets it/],
    ['x-curacel-signature: forged', /server sets it/],
    [': no name', /Name: value/],
  ])('refuses channel.header %j at write time with a 400, for requested and active alike', async (header, message) => {
    const token = await t.token();
    for (const status of ['requested', 'active'] as const) {
      const res = await request(t.app).post('/fhir/Subscription').auth(token, { type: 'bearer' })
        .send(classicSubscription('Claim?status=active', 'https://example.org/hook', { status, channel: { type: 'rest-hook', endpoint: 'https://example.org/hook', header: ['X-Fine: 1', header] } }));
      expect(res.status, status).toBe(400);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(res.body.issue[0].details.text).toMatch(message);
      expect(res.body.issue[0].expression).toEqual(['Subscription.channel.header[1]']);
    }
    const stored = await request(t.app).get('/fhir/Subscription?_count=1000').auth(token, { type: 'bearer' });
    expect(JSON.stringify(stored.body)).not.toContain(header);
  });

  it('accepts ordinary headers (tab and Latin-1 in values, token punctuation in names)', async () => {
    const token = await t.token();
    const res = await request(t.app).post('/fhir/Subscription').auth(token, { type: 'bearer' })
      .send(classicSubscription('Claim?status=active', 'https://example.org/hook', { channel: { type: 'rest-hook', endpoint: 'https://example.org/hook', header: ['Authorization: Bearer abc', "X-Odd_Name.1!#$%&'*+^`|~: caf\u00e9\tok"] } }));
    expect(res.status).toBe(201);
  });

  it('refuses a subscription to what its owner may not read', async () => {
    const token = await t.token('system/Subscription.cruds system/Patient.rs');
    const res = await request(t.app).post('/fhir/Subscription').auth(token, { type: 'bearer' }).send(classicSubscription('Claim?status=active', 'https://example.org/hook'));
    expect(res.status).toBe(403);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });
});
