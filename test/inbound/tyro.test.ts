import { createHmac, randomBytes } from 'node:crypto';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ClaimResponse } from '@medplum/fhirtypes';
import { listEvents } from '../../src/inbound/index.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { client, expectBooksBalanced } from '../support/billing.ts';
import type { Client } from '../support/billing.ts';
import { postSigned, registerTyro, sign, transaction, txnId } from '../support/tyro.ts';

/** Tyro Health webhooks (shared/seeds/004): authentication, parsing and the journal, over HTTP on the real database. */
let t: TestApp;
let c: Client;
let url: string;
let secret: string;
let admin: string;
beforeAll(async () => {
  t = await startTestApp();
  c = client(t, await t.token());
  admin = await t.token('admin');
  const source = await registerTyro(t, admin);
  url = source.url;
  secret = source.credentials!.signingSecret!;
});
afterEach(() => expectBooksBalanced(t));
afterAll(() => t.close());

async function claimed() {
  const patientRef = await c.patient();
  return c.claim(patientRef, { billId: `inv-${randomBytes(5).toString('hex')}` });
}

const approved = (invoiceReference: string, id = txnId(), modified = '2026-12-01T10:00:00.000Z') => ({
  event: 'healthFundApprovedInvoice',
  transaction: transaction({ id, invoiceReference, modified }),
});

const responsesFor = (id: string) => c.fhir.search<ClaimResponse>(`ClaimResponse?identifier=${id}`);

describe('signed POST', () => {
  it('a valid event is stored (200), journalled raw, and the signing secret is never shown again', async () => {
    const claim = await claimed();
    const body = approved(claim.billId);
    const text = JSON.stringify(body);
    const res = await postSigned(t, url, secret, text);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ result: 'recorded', transactionId: body.transaction._id, event: 'healthFundApprovedInvoice', state: 'approved' });
    expect(await responsesFor(body.transaction._id as string)).toHaveLength(1);
    const journal = (await listEvents(t.db, 'default', 'tyro')).filter((e) => e.dedupeKey.startsWith(body.transaction._id as string));
    expect(journal.map((e) => e.status)).toEqual(['processed']);
    expect(journal[0].rawBody).toBe(text);
    const view = await request(t.app).get(`/admin/webhook-sources/${url.split('/').pop()}`).auth(admin, { type: 'bearer' });
    expect(view.body.signingSecretSet).toBe(true);
    expect(JSON.stringify(view.body)).not.toContain(secret);
  });

  it('a bad signature is 401, journalled, and changes nothing; so is a signature over a re-serialised body', async () => {
    const claim = await claimed();
    const body = approved(claim.billId);
    const text = JSON.stringify(body);
    const ts = new Date().toISOString();
    const wrong = await postSigned(t, url, secret, text, { timestamp: ts, signature: sign('another-secret-entirely-000', ts, text) });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toMatch(/X-Sender-Signature/);
    // Same JSON, other bytes (spaces): the signature is over the bytes as sent, so it fails.
    const spaced = JSON.stringify(body, null, 1);
    expect((await postSigned(t, url, secret, spaced, { timestamp: ts, signature: sign(secret, ts, text) })).status).toBe(401);
    expect((await postSigned(t, url, secret, text, { signature: 'abc' })).status).toBe(401);
    const none = await request(t.app).post(url).set('Content-Type', 'application/json').send(text);
    expect(none.status).toBe(401);
    expect(await responsesFor(body.transaction._id as string)).toHaveLength(0);
    const journal = await listEvents(t.db, 'default', 'tyro');
    expect(journal.filter((e) => e.eventType === 'tyro.unauthenticated' && e.rawBody === text).length).toBeGreaterThanOrEqual(2);
  });

  it('stale timestamps (beyond the tolerance) and future ones are 401; within 24 h of retries is fine', async () => {
    const claim = await claimed();
    const old = new Date(Date.now() - 26 * 3600_000).toISOString();
    expect((await postSigned(t, url, secret, approved(claim.billId), { timestamp: old })).status).toBe(401);
    const future = new Date(Date.now() + 3600_000).toISOString();
    const res = await postSigned(t, url, secret, approved(claim.billId), { timestamp: future });
    expect(res.status).toBe(401);
    expect(res.body.error).toMatch(/future/);
    expect((await postSigned(t, url, secret, approved(claim.billId), { timestamp: 'yesterday' })).status).toBe(401);
    const retried = new Date(Date.now() - 23.9 * 3600_000).toISOString();
    expect((await postSigned(t, url, secret, approved(claim.billId), { timestamp: retried })).status).toBe(200);
  });

  it('the tolerance is a source option', async () => {
    const tight = await registerTyro(t, admin, { timestampToleranceSeconds: 60 });
    const claim = await claimed();
    const twoMinutes = new Date(Date.now() - 120_000).toISOString();
    expect((await postSigned(t, tight.url, tight.credentials!.signingSecret!, approved(claim.billId), { timestamp: twoMinutes })).status).toBe(401);
    expect((await postSigned(t, url, secret, approved(claim.billId), { timestamp: twoMinutes })).status).toBe(200);
  });

  it('header names in any case; the sample\'s quoted timestamp is signed as sent', async () => {
    const claim = await claimed();
    const text = JSON.stringify(approved(claim.billId));
    const ts = new Date().toISOString();
    const res = await request(t.app).post(url).set('content-type', 'application/json').set('x-sender-timestamp', ts).set('X-SENDER-SIGNATURE', sign(secret, ts, text).toUpperCase()).send(text);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const quoted = `"${new Date().toISOString()}"`;
    const text2 = JSON.stringify(approved(claim.billId));
    expect((await postSigned(t, url, secret, text2, { timestamp: quoted })).status).toBe(200);
  });

  it('a signing secret the sender issued can be given at registration', async () => {
    const given = randomBytes(24).toString('hex');
    const source = await registerTyro(t, admin, { signingSecret: given });
    expect(source.credentials).toBeUndefined();
    const claim = await claimed();
    expect((await postSigned(t, source.url, given, approved(claim.billId))).status).toBe(200);
    expect((await postSigned(t, source.url, secret, approved(claim.billId))).status).toBe(401);
  });
});

describe('unsigned GET, PUT and DELETE', () => {
  const token = randomBytes(20).toString('hex');
  let base: string;
  beforeAll(async () => {
    const source = await registerTyro(t, admin, { urlToken: token, requiredHeader: { name: 'sessionKey', value: 'required-header-value-0123456789' } });
    base = source.url;
    expect(JSON.stringify(source)).not.toContain(token);
    expect(JSON.stringify(source)).not.toContain('required-header-value-0123456789');
  });

  it('GET with the URL token and the required header is noted (200) and journalled; without either it is 401', async () => {
    const ok = await request(t.app).get(`${base}/${token}?event=healthFundPaidInvoice&transactionId=abc`).set('SessionKey', 'required-header-value-0123456789');
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body).toMatchObject({ result: 'noted', event: 'healthFundPaidInvoice' });
    expect((await request(t.app).get(`${base}/${token}`)).status).toBe(401);
    expect((await request(t.app).get(`${base}/${token}x`).set('sessionKey', 'required-header-value-0123456789')).status).toBe(401);
    expect((await request(t.app).get(`${base}/${token}`).set('sessionKey', 'wrong')).status).toBe(401);
    expect((await request(t.app).delete(`${base}/${token}`).set('sessionKey', 'required-header-value-0123456789')).status).toBe(200);
    const notices = (await listEvents(t.db, 'default', 'tyro')).filter((e) => e.eventType === 'tyro.notice');
    expect(notices.length).toBeGreaterThanOrEqual(2);
    expect(JSON.stringify(notices)).not.toContain('required-header-value-0123456789');
  });

  it('PUT with a body applies it like a signed POST', async () => {
    const claim = await claimed();
    const body = approved(claim.billId);
    const res = await request(t.app).put(`${base}/${token}`).set('sessionKey', 'required-header-value-0123456789').send(body);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.result).toBe('recorded');
    expect(await responsesFor(body.transaction._id as string)).toHaveLength(1);
  });

  it('a PATCHed urlToken replaces the old one at once; requiredHeader null stops asking for it', async () => {
    const source = await registerTyro(t, admin, { signed: false, urlToken: randomBytes(20).toString('hex') });
    expect(source.credentials).toBeUndefined();
    expect(source.signingSecretSet).toBe(false);
    const id = source.url.split('/').pop();
    const fresh = randomBytes(20).toString('hex');
    const patched = await request(t.app).patch(`/admin/webhook-sources/${id}`).auth(admin, { type: 'bearer' }).send({ urlToken: fresh });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    expect(JSON.stringify(patched.body)).not.toContain(fresh);
    expect((await request(t.app).get(`${source.url}/${fresh}`)).status).toBe(200);
    // A signed POST to a source that signs nothing is refused: it takes webhooks at its token URL only.
    expect((await postSigned(t, source.url, secret, approved('x'))).status).toBe(401);
    const claim = await claimed();
    const unsigned = await request(t.app).post(`${source.url}/${fresh}`).send(approved(claim.billId));
    expect(unsigned.status, JSON.stringify(unsigned.body)).toBe(200);
    expect(unsigned.body.result).toBe('recorded');
    const short = await request(t.app).patch(`/admin/webhook-sources/${id}`).auth(admin, { type: 'bearer' }).send({ urlToken: 'short' });
    expect(short.status).toBe(400);
  });

  it('rotate-credentials on an unsigned source issues a new URL token and header value, shown once; the old ones stop at once', async () => {
    const oldToken = randomBytes(20).toString('hex');
    const oldHeader = 'old-header-value-0123456789abcdef';
    const source = await registerTyro(t, admin, { signed: false, urlToken: oldToken, requiredHeader: { name: 'sessionKey', value: oldHeader } });
    const id = source.url.split('/').pop();
    const rotated = await request(t.app).post(`/admin/webhook-sources/${id}/rotate-credentials`).auth(admin, { type: 'bearer' });
    expect(rotated.status, JSON.stringify(rotated.body)).toBe(200);
    const { urlToken, requiredHeader } = rotated.body.credentials;
    expect(urlToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(requiredHeader).toMatchObject({ name: 'sessionKey', value: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
    expect((await request(t.app).get(`${source.url}/${urlToken}`).set('sessionKey', requiredHeader.value)).status).toBe(200);
    expect((await request(t.app).get(`${source.url}/${oldToken}`).set('sessionKey', requiredHeader.value)).status).toBe(401);
    expect((await request(t.app).get(`${source.url}/${urlToken}`).set('sessionKey', oldHeader)).status).toBe(401);
    const shown = await request(t.app).get(`/admin/webhook-sources/${id}`).auth(admin, { type: 'bearer' });
    expect(JSON.stringify(shown.body)).not.toContain(urlToken);
    expect(JSON.stringify(shown.body)).not.toContain(requiredHeader.value);
    // Nothing to rotate: unsigned, no token, no header.
    const bare = await registerTyro(t, admin, { signed: false });
    const none = await request(t.app).post(`/admin/webhook-sources/${bare.url.split('/').pop()}/rotate-credentials`).auth(admin, { type: 'bearer' });
    expect(none.status).toBe(400);
    expect(none.body.error ?? none.text).toMatch(/no credentials to rotate/);
  });

  it('the token URL of a source without a token, and the signed URL without a signature, are 401', async () => {
    expect((await request(t.app).get(`${url}/${token}`)).status).toBe(401);
    expect((await request(t.app).post(base).send(approved('x'))).status).toBe(401);
  });
});

describe('malformed bodies are 400 (final), journalled, and change nothing', () => {
  it.each([
    ['not JSON', '{"event":'],
    ['no event anywhere', JSON.stringify(transaction({ id: 'a1', invoiceReference: 'x', modified: '2026-12-01T10:00:00Z' }))],
    ['an unknown event', JSON.stringify({ event: 'somethingElse', transaction: transaction({ id: 'a2', invoiceReference: 'x', modified: '2026-12-01T10:00:00Z' }) })],
    ['no modified', JSON.stringify({ event: 'healthFundApprovedInvoice', transaction: { _id: 'a3', invoiceReference: 'x' } })],
    ['no id', JSON.stringify({ event: 'healthFundApprovedInvoice', transaction: { invoiceReference: 'x', modified: '2026-12-01T10:00:00Z' } })],
    ['a float for cents', JSON.stringify({ event: 'healthFundApprovedInvoice', transaction: transaction({ id: 'a4', invoiceReference: 'x', modified: '2026-12-01T10:00:00Z', extra: { claims: [{ status: 'approved', amountGap: 20.5 }] } }) })],
    ['cents and string that disagree', JSON.stringify({ event: 'healthFundApprovedInvoice', transaction: transaction({ id: 'a5', invoiceReference: 'x', modified: '2026-12-01T10:00:00Z', extra: { claims: [{ status: 'approved', amountGap: 2000, amountGapString: '$20.01' }] } }) })],
    ['a string amount that is no amount', JSON.stringify({ event: 'healthFundApprovedInvoice', transaction: transaction({ id: 'a6', invoiceReference: 'x', modified: '2026-12-01T10:00:00Z', extra: { claims: [{ status: 'approved', amountGapString: '20 dollars' }] } }) })],
    ['an unknown claim status', JSON.stringify({ event: 'healthFundApprovedInvoice', transaction: transaction({ id: 'a7', invoiceReference: 'x', modified: '2026-12-01T10:00:00Z', claimStatus: 'maybe' }) })],
    ['another currency than the books\'', JSON.stringify({ event: 'healthFundApprovedInvoice', transaction: transaction({ id: 'a8', invoiceReference: 'x', modified: '2026-12-01T10:00:00Z', extra: { currencyCode: 'AUD' } }) })],
    ['an array', '[1,2]'],
    ['nesting too deep to walk', `{"event":"healthFundApprovedInvoice","transaction":${'{"a":'.repeat(200)}1${'}'.repeat(200)}}`],
    ['a lone surrogate', '{"event":"healthFundApprovedInvoice","transaction":{"_id":"a9","invoiceReference":"\\ud800","modified":"2026-12-01T10:00:00Z"}}'],
    ['a NUL character', '{"event":"healthFundApprovedInvoice","transaction":{"_id":"a10","invoiceReference":"x\\u0000","modified":"2026-12-01T10:00:00Z"}}'],
    ['cents beyond any amount', JSON.stringify({ event: 'healthFundApprovedInvoice', transaction: transaction({ id: 'a11', invoiceReference: 'x', modified: '2026-12-01T10:00:00Z', extra: { claims: [{ status: 'approved', amountGap: 1e20 }] } }) })],
    ['an id that is not an id', JSON.stringify({ event: 'healthFundApprovedInvoice', transaction: transaction({ id: '../../x', invoiceReference: 'x', modified: '2026-12-01T10:00:00Z' }) })],
  ])('%s', async (_name, body) => {
    const before = (await listEvents(t.db, 'default', 'tyro')).length;
    const responses = (await c.fhir.search('ClaimResponse?_count=1000')).length;
    const res = await postSigned(t, url, secret, body);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(typeof res.body.error).toBe('string');
    expect((await c.fhir.search('ClaimResponse?_count=1000')).length).toBe(responses);
    const after = await listEvents(t.db, 'default', 'tyro');
    expect(after.length).toBeGreaterThan(before);
    expect(after.at(-1)!.status).toBe('refused');
  });

  it('over 1 MiB is 413', async () => {
    const res = await postSigned(t, url, secret, JSON.stringify({ event: 'healthFundApprovedInvoice', pad: 'x'.repeat(1024 * 1024) }));
    expect(res.status).toBe(413);
    expect(res.body.error).toMatch(/too large/);
  });

  it('invalid UTF-8', async () => {
    const body = Buffer.from([0x7b, 0xff, 0x7d]);
    const ts = new Date().toISOString();
    const res = await request(t.app).post(url).set('Content-Type', 'application/octet-stream').set('X-Sender-Timestamp', ts)
      .set('X-Sender-Signature', createHmac('sha256', secret).update(Buffer.concat([Buffer.from(ts), body])).digest('hex')).send(body);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.error).toMatch(/UTF-8/);
  });
});
