import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { C4BB, WEBHOOK, client, expectBooksBalanced } from '../support/billing.ts';
import type { Client } from '../support/billing.ts';

/**
 * Hostile input at /api (the Cair webhook, /api/token), /oauth2/token and /admin: each is a 4xx in
 * that API's own error shape, says what is wrong, and writes nothing (not even to the journal).
 */
let t: TestApp;
let c: Client;
let admin: string;
let billId: string;
beforeAll(async () => {
  t = await startTestApp();
  c = client(t, await t.token());
  const patientRef = await c.patient();
  const claim = await c.claim(patientRef);
  await c.claimResponse(claim.id, { total: 50, patientRef });
  billId = claim.billId;
  admin = (await request(t.app).post('/api/token').send(t.bootstrap)).body.accessToken;
});
afterAll(() => t.close());

const deep = (levels: number): string => '{"a":'.repeat(levels) + '1' + '}'.repeat(levels);

/** Everything a refused request must leave alone: journal, ledger, stored versions, tenants. */
async function snapshot(): Promise<string> {
  const counts = await t.db.query<{ n: string }>(
    `SELECT concat_ws(',', (SELECT count(*) FROM inbound_event), (SELECT count(*) FROM ledger_entry), (SELECT count(*) FROM resource_history), (SELECT count(*) FROM tenant)) AS n`,
  );
  return counts[0].n;
}

function expectNoInternals(res: request.Response): void {
  expect(res.status, res.text.slice(0, 300)).toBeLessThan(500);
  expect(res.type).toBe('application/json');
  expect(res.text).not.toMatch(/ at .*\.(ts|js|mjs):\d+|SELECT |INSERT |invalid byte sequence|<html|<!DOCTYPE/i);
}

describe('the Cair patient-payment webhook', () => {
  const send = (body: string) => request(t.app).post(WEBHOOK).auth(c.token, { type: 'bearer' }).type('json').send(body);
  it.each([
    ['a NUL in billId', JSON.stringify({ billId: 'a\u0000b', paymentAmount: 1 }), 400, /\/billId contains a NUL/],
    ['a lone surrogate in billId', '{"billId":"a\\ud800b","paymentAmount":1}', 400, /\/billId contains a lone UTF-16 surrogate/],
    ['a NUL in an unknown field', JSON.stringify({ billId: 'x', paymentAmount: 1, note: '\u0000' }), 400, /\/note contains a NUL/],
    ['a lone surrogate in a property name', '{"billId":"x","paymentAmount":1,"\\udc00":1}', 400, /property name .* surrogate/],
    ['an unknown field nested 5,000 deep', `{"billId":"x","paymentAmount":1,"extra":${deep(5000)}}`, 400, /nested more than 64 levels/],
    ['a body over 64 KiB', JSON.stringify({ billId: 'x', paymentAmount: 1, extra: 'x'.repeat(70_000) }), 413, /at most 64 KiB/],
  ])('%s: %i, nothing journalled', async (_name, body, status, message) => {
    const before = await snapshot();
    const res = await send(body);
    expectNoInternals(res);
    expect(res.status).toBe(status);
    expect(res.body.error).toBe('Invalid request body');
    expect(res.body.details[0].message).toMatch(message);
    expect(await snapshot()).toBe(before);
  });

  it('still takes a valid payment afterwards', async () => {
    const res = await c.pay({ billId, paymentAmount: 10 });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    await expectBooksBalanced(t);
  });
});

describe('a ClaimResponse amount beyond the money cap', () => {
  it('is refused at write time (400), so no payment on its claim can overflow a lifecycle total', async () => {
    const patientRef = await c.patient();
    const claim = await c.claim(patientRef);
    const before = await snapshot();
    const category = { coding: [{ system: C4BB, code: 'memberliability' }] };
    for (const value of [1e17, 99999999999999999999]) {
      const res = await request(t.app)
        .post('/fhir/ClaimResponse')
        .auth(c.token, { type: 'bearer' })
        .send({
          resourceType: 'ClaimResponse', status: 'active', use: 'claim', outcome: 'complete', created: '2024-05-02',
          type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
          patient: { reference: patientRef }, insurer: { display: 'Payer' }, request: { reference: `Claim/${claim.id}` },
          total: [{ category, amount: { value, currency: 'USD' } }],
        });
      expect(res.status).toBe(400);
      expect(res.body.issue[0].details.text).toMatch(/beyond the limit of 9999999999999.99/);
    }
    expect(await snapshot()).toBe(before);
    const pay = await c.pay({ billId: claim.billId, paymentAmount: 9999999999999.99 });
    expect(pay.status, JSON.stringify(pay.body)).toBe(200);
    await expectBooksBalanced(t);
  });
});

describe('token endpoints and /admin', () => {
  it.each([
    ['/api/token with a NUL', () => request(t.app).post('/api/token').send({ clientId: 'a\u0000', clientSecret: 'b' }), 400, (b: any) => expect(b.details[0].message).toMatch(/NUL/)],
    ['/api/token nested deep', () => request(t.app).post('/api/token').type('json').send(`{"clientId":${deep(1000)}}`), 400, (b: any) => expect(b.details[0].message).toMatch(/nested/)],
    ['/oauth2/token with a NUL', () => request(t.app).post('/oauth2/token').type('form').send('grant_type=client_credentials&client_id=%00&client_secret=x'), 400, (b: any) => expect(b).toEqual({ error: 'invalid_request', error_description: expect.stringMatching(/NUL/) })],
    ['/admin/tenants with a NUL', () => request(t.app).post('/admin/tenants').auth(admin, { type: 'bearer' }).send({ id: 'nul', name: 'a\u0000' }), 400, (b: any) => expect(b.error).toMatch(/NUL/)],
    ['/admin/tenants with a lone surrogate', () => request(t.app).post('/admin/tenants').auth(admin, { type: 'bearer' }).type('json').send('{"id":"sur","name":"\\ud800"}'), 400, (b: any) => expect(b.error).toMatch(/surrogate/)],
    ['/admin/tenants nested deep', () => request(t.app).post('/admin/tenants').auth(admin, { type: 'bearer' }).type('json').send(`{"id":"deep","name":"x","z":${deep(5000)}}`), 400, (b: any) => expect(b.error).toMatch(/nested/)],
    ['/admin/clients?tenant=%00', () => request(t.app).get('/admin/clients?tenant=%00').auth(admin, { type: 'bearer' }), 400, (b: any) => expect(b.error).toMatch(/NUL/)],
    ['/admin/clients/%00/rotate-secret', () => request(t.app).post('/admin/clients/%00/rotate-secret').auth(admin, { type: 'bearer' }), 400, (b: any) => expect(b.error).toMatch(/path contains a NUL/)],
  ])('%s', async (_name, send, status, check) => {
    const before = await snapshot();
    const res = await send();
    expectNoInternals(res);
    expect(res.status).toBe(status);
    check(res.body);
    expect(await snapshot()).toBe(before);
  });
});

describe('unknown routes answer JSON, never an HTML page', () => {
  it.each([
    ['GET', '/api/nope'],
    ['DELETE', WEBHOOK],
    ['GET', '/admin/nope'],
    ['GET', '/nope'],
    ['PUT', '/api/token'],
  ])('%s %s', async (method, path) => {
    const res = await request(t.app)[method.toLowerCase() as 'get'](path).auth(admin, { type: 'bearer' });
    expectNoInternals(res);
    expect(res.status).toBe(404);
    expect(res.body.error).toMatch(/^Not found/);
  });
});
