import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listEvents } from '../../src/inbound/index.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { client } from '../support/billing.ts';
import type { Client } from '../support/billing.ts';
import { claimVetted, paApproved, postSigned as postCuracel, registerCuracelSource } from '../support/curacel.ts';
import { postSigned as postTyro, registerTyro, transaction, txnId } from '../support/tyro.ts';

/**
 * Bad HMAC signatures are limited as bad Basic passwords are (sources/authenticate.ts): per source
 * and address, 429 with Retry-After past the limit (the right signature too, from that address),
 * in each sender's own error shape, journalled; other callers and other sources are not locked out.
 */
let t: TestApp;
let c: Client;
let admin: string;
beforeAll(async () => {
  // Three failures per source and address; X-Forwarded-For from the test client is believed.
  t = await startTestApp({ auth: { failuresPerClient: 3 }, trustedProxies: ['127.0.0.0/8', '::1/128'] });
  c = client(t, await t.token());
  admin = await t.token('admin');
});
afterAll(() => t.close());

const address = (): string => `203.0.113.${1 + (randomBytes(1)[0] % 250)}`;

describe('Curacel (x-curacel-signature)', () => {
  it('a fourth attempt after three bad signatures is 429 {message} with Retry-After, even rightly signed; elsewhere it is stored', async () => {
    const source = await registerCuracelSource(t, admin, 'claims-vetting');
    const secret = source.credentials!.signingSecret;
    const body = JSON.stringify(claimVetted());
    const from = (ip: string, signature?: string) => postCuracel(t, source.url, secret, body, signature).set('X-Forwarded-For', ip);
    const ip = address();
    for (let i = 0; i < 3; i++) {
      const bad = await from(ip, '0'.repeat(64));
      expect(bad.status).toBe(401);
      expect(bad.body.message).toMatch(/does not match the body/);
    }
    const locked = await from(ip);
    expect(locked.status).toBe(429);
    expect(locked.headers['retry-after']).toMatch(/^\d+$/);
    expect(locked.body).toEqual({ message: 'Too many failed attempts; retry later', retryAfter: Number(locked.headers['retry-after']) });
    const journal = (await listEvents(t.db, 'default', 'claims-vetting')).filter((e) => e.sourceId === source.id);
    expect(journal.map((e) => [e.status, e.response?.status])).toEqual([['refused', 401], ['refused', 401], ['refused', 401], ['refused', 429]]);
    // The real sender, elsewhere, is not locked out by someone else's failures.
    const sender = await from(address() === ip ? '198.51.100.7' : address());
    expect(sender.status, sender.text).toBe(200);
  });

  it('good signatures give their point back: many in a row are never limited', async () => {
    const source = await registerCuracelSource(t, admin, 'pre-authorization');
    const ip = address();
    for (let i = 0; i < 5; i++) {
      const body = JSON.stringify(paApproved());
      const res = await postCuracel(t, source.url, source.credentials!.signingSecret, body).set('X-Forwarded-For', ip);
      expect(res.status, res.text).toBe(200);
    }
  });
});

describe('Tyro (X-Sender-Signature)', () => {
  it('a fourth attempt after three bad signatures is 429 {error} with Retry-After; another address is stored; good ones are never limited', async () => {
    const source = await registerTyro(t, admin);
    const secret = source.credentials!.signingSecret!;
    const claim = await c.claim(await c.patient(), { billId: `inv-${randomBytes(5).toString('hex')}` });
    const event = () => ({ event: 'healthFundApprovedInvoice', transaction: transaction({ id: txnId(), invoiceReference: claim.billId, modified: '2026-12-01T10:00:00.000Z' }) });
    const from = (ip: string, signature?: string) => postTyro(t, source.url, secret, event(), { ...(signature && { signature }), headers: { 'X-Forwarded-For': ip } });
    const good = address();
    for (let i = 0; i < 4; i++) expect((await from(good)).status).toBe(200);
    const ip = good === '198.51.100.7' ? address() : '198.51.100.7';
    for (let i = 0; i < 3; i++) {
      const bad = await from(ip, 'f'.repeat(64));
      expect(bad.status).toBe(401);
      expect(bad.body).toEqual({ error: 'Invalid X-Sender-Signature' });
    }
    const locked = await from(ip);
    expect(locked.status).toBe(429);
    expect(locked.headers['retry-after']).toMatch(/^\d+$/);
    expect(locked.body).toEqual({ error: 'Too many failed attempts; retry later' });
    const refused = (await listEvents(t.db, 'default', 'tyro')).filter((e) => e.sourceId === source.id && e.status === 'refused');
    expect(refused.map((e) => e.response?.status)).toEqual([401, 401, 401, 429]);
    expect((await from(good)).status).toBe(200);
  });
});

describe('Tyro (URL token of an unsigned source)', () => {
  it('a fourth attempt after three wrong tokens is 429 {error} with Retry-After, even with the right one; another address is served; right ones are never limited', async () => {
    const urlToken = randomBytes(20).toString('hex');
    const source = await registerTyro(t, admin, { signed: false, urlToken });
    const at = (ip: string, token = urlToken) => request(t.app).get(`${source.url}/${token}`).set('X-Forwarded-For', ip);
    const good = address();
    for (let i = 0; i < 4; i++) expect((await at(good)).status).toBe(200);
    const ip = good === '198.51.100.9' ? address() : '198.51.100.9';
    for (let i = 0; i < 3; i++) {
      const bad = await at(ip, randomBytes(20).toString('hex'));
      expect(bad.status).toBe(401);
      expect(bad.body).toEqual({ error: 'Invalid URL token' });
    }
    const locked = await at(ip);
    expect(locked.status).toBe(429);
    expect(locked.headers['retry-after']).toMatch(/^\d+$/);
    expect(locked.body).toEqual({ error: 'Too many failed attempts; retry later' });
    const refused = (await listEvents(t.db, 'default', 'tyro')).filter((e) => e.sourceId === source.id && e.status === 'refused');
    expect(refused.map((e) => e.response?.status)).toEqual([401, 401, 401, 429]);
    expect((await at(good)).status).toBe(200);
    // Per source: the same address is not locked out of another source.
    const otherToken = randomBytes(20).toString('hex');
    const other = await registerTyro(t, admin, { signed: false, urlToken: otherToken });
    expect((await request(t.app).get(`${other.url}/${otherToken}`).set('X-Forwarded-For', ip)).status).toBe(200);
  });
});
