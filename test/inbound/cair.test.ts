import { randomUUID } from 'node:crypto';
import SwaggerParser from '@apidevtools/swagger-parser';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listEvents } from '../../src/inbound/index.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { WEBHOOK, client, expectBooksBalanced } from '../support/billing.ts';
import type { Client } from '../support/billing.ts';

/** The Cair patient-payment webhook as its contract (shared/seeds/000) states it, through HTTP. */
let t: TestApp;
let c: Client;
let patientRef: string;
beforeAll(async () => {
  t = await startTestApp();
  c = client(t, await t.token());
  patientRef = await c.patient();
});
afterAll(() => t.close());

const INVALID = 'Invalid request body';

async function claimOwing(total: number): Promise<{ id: string; billId: string }> {
  const claim = await c.claim(patientRef);
  await c.claimResponse(claim.id, { total, patientRef });
  return claim;
}

describe('authentication', () => {
  it('answers 401 {"error": "Invalid or expired access token"} without, or with a bad, token', async () => {
    const body = { billId: '12345', paymentAmount: 1 };
    for (const auth of [undefined, 'Bearer nonsense', 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.', 'Basic YTpi']) {
      const req = request(t.app).post(WEBHOOK).send(body);
      const res = await (auth ? req.set('Authorization', auth) : req);
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ error: 'Invalid or expired access token' });
    }
  });

  it('answers 401 before reading the body, so a malformed body without a token is still a 401', async () => {
    const res = await request(t.app).post(WEBHOOK).set('Content-Type', 'application/json').send('{not json');
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'Invalid or expired access token' });
  });

  it('needs the webhook scope or create on PaymentReconciliation (403 otherwise)', async () => {
    const claim = await claimOwing(10);
    const readOnly = await t.token('system/Claim.rs');
    const refused = await request(t.app).post(WEBHOOK).auth(readOnly, { type: 'bearer' }).send({ billId: claim.billId, paymentAmount: 1 });
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatch(/webhook/);
    for (const scopes of ['webhook', 'system/PaymentReconciliation.c']) {
      const token = await t.token(scopes);
      const ok = await request(t.app).post(WEBHOOK).auth(token, { type: 'bearer' }).send({ billId: claim.billId, paymentAmount: 1 });
      expect(ok.status, scopes).toBe(200);
    }
  });

  it('accepts the token from /api/token, as the seed does it', async () => {
    const tokenRes = await request(t.app).post('/api/token').send({ clientId: t.bootstrap.clientId, clientSecret: t.bootstrap.clientSecret });
    expect(tokenRes.status).toBe(200);
    const claim = await claimOwing(10);
    const res = await request(t.app).post(WEBHOOK).set('Authorization', `Bearer ${tokenRes.body.accessToken}`).send({ billId: claim.billId, paymentAmount: 2 });
    expect(res.status).toBe(200);
  });
});

describe('request validation: 400 {"error": "Invalid request body", "details": [...]}, nothing written', () => {
  const cases: [string, unknown, { path: (string | number)[]; message: string }[]][] = [
    ['negative amount', { billId: '12345', paymentAmount: -5 }, [{ path: ['paymentAmount'], message: 'paymentAmount must be positive' }]],
    ['zero amount', { billId: '12345', paymentAmount: 0 }, [{ path: ['paymentAmount'], message: 'paymentAmount must be positive' }]],
    ['amount below a cent', { billId: '12345', paymentAmount: 0.004 }, [{ path: ['paymentAmount'], message: 'paymentAmount must be at least 0.01 (amounts are rounded to cents)' }]],
    ['amount too large', { billId: '12345', paymentAmount: 1e15 }, [{ path: ['paymentAmount'], message: 'paymentAmount must be at most 9999999999999.99' }]],
    ['amount as a string', { billId: '12345', paymentAmount: '150.75' }, [{ path: ['paymentAmount'], message: 'paymentAmount must be a number' }]],
    ['missing billId', { paymentAmount: 10 }, [{ path: ['billId'], message: 'billId is required' }]],
    ['billId as a number', { billId: 12345, paymentAmount: 10 }, [{ path: ['billId'], message: 'billId must be a string' }]],
    ['empty billId', { billId: '', paymentAmount: 10 }, [{ path: ['billId'], message: 'billId must not be empty' }]],
    [
      'everything missing',
      {},
      [
        { path: ['billId'], message: 'billId is required' },
        { path: ['paymentAmount'], message: 'paymentAmount is required' },
      ],
    ],
    ['unparseable date', { billId: '1', paymentAmount: 1, paymentDate: '15/01/2024' }, [{ path: ['paymentDate'], message: 'paymentDate must be an ISO 8601 date (2024-01-15) or date-time (2024-01-15T10:30:00Z)' }]],
    ['impossible date', { billId: '1', paymentAmount: 1, paymentDate: '2024-02-30' }, [{ path: ['paymentDate'], message: 'paymentDate must be an ISO 8601 date (2024-01-15) or date-time (2024-01-15T10:30:00Z)' }]],
    ['impossible time', { billId: '1', paymentAmount: 1, paymentDate: '2024-01-15T25:00:00Z' }, [{ path: ['paymentDate'], message: 'paymentDate must be an ISO 8601 date (2024-01-15) or date-time (2024-01-15T10:30:00Z)' }]],
    ['date as a number', { billId: '1', paymentAmount: 1, paymentDate: 20240115 }, [{ path: ['paymentDate'], message: 'paymentDate must be a string' }]],
    ['method as a number', { billId: '1', paymentAmount: 1, paymentMethod: 4 }, [{ path: ['paymentMethod'], message: 'paymentMethod must be a string' }]],
    ['empty trace id', { billId: '1', paymentAmount: 1, paymentTraceId: '' }, [{ path: ['paymentTraceId'], message: 'paymentTraceId must not be empty' }]],
    ['blank trace id', { billId: '1', paymentAmount: 1, paymentTraceId: ' ' }, [{ path: ['paymentTraceId'], message: 'paymentTraceId must not be blank' }]],
    ['an array body', [{ billId: '1', paymentAmount: 1 }], [{ path: [], message: 'The request body must be a JSON object' }]],
  ];
  for (const [name, body, details] of cases) {
    it(name, async () => {
      const res = await c.pay(body);
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ error: INVALID, details });
    });
  }

  it('malformed JSON', async () => {
    const res = await request(t.app).post(WEBHOOK).auth(c.token, { type: 'bearer' }).set('Content-Type', 'application/json').send('{"billId": "1", "paymentAmount": ');
    expect(res.status).toBe(400);
    expect(res.body.error).toBe(INVALID);
    expect(res.body.details).toHaveLength(1);
    expect(res.body.details[0].path).toEqual([]);
    expect(res.body.details[0].message).toMatch(/^Malformed JSON/);
  });

  it('an empty body, and a body too large (413, same shape)', async () => {
    const empty = await request(t.app).post(WEBHOOK).auth(c.token, { type: 'bearer' });
    expect(empty.status).toBe(400);
    expect(empty.body).toEqual({
      error: INVALID,
      details: [
        { path: ['billId'], message: 'billId is required' },
        { path: ['paymentAmount'], message: 'paymentAmount is required' },
      ],
    });
    const huge = await c.pay({ billId: 'x'.repeat(70_000), paymentAmount: 1 });
    expect(huge.status).toBe(413);
    expect(huge.body.error).toBe(INVALID);
  });

  it('wrote nothing for any of them', async () => {
    const rows = await t.db.query<{ n: string }>("SELECT count(*)::text AS n FROM inbound_event WHERE tenant_id = 'default' AND dedupe_key LIKE '%12345%'");
    expect(rows[0].n).toBe('0');
  });

  it('ignores unknown fields and takes null for an absent optional field', async () => {
    const claim = await claimOwing(10);
    const res = await c.pay({ billId: claim.billId, paymentAmount: 1, paymentDate: null, paymentMethod: null, paymentTraceId: null, note: 'extra' });
    expect(res.status).toBe(200);
  });

  it('reads the body as JSON whatever the Content-Type says', async () => {
    const claim = await claimOwing(10);
    const res = await request(t.app).post(WEBHOOK).auth(c.token, { type: 'bearer' }).set('Content-Type', 'text/plain').send(JSON.stringify({ billId: claim.billId, paymentAmount: 1 }));
    expect(res.status).toBe(200);
  });
});

describe('404 and 200', () => {
  it('answers 404 {"error": "Claim not found for billId: <billId>"} and journals the event as unmatched', async () => {
    const billId = `missing-${randomUUID()}`;
    const res = await c.pay({ billId, paymentAmount: 10, paymentTraceId: `pi_${billId}` });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: `Claim not found for billId: ${billId}` });
    const events = (await listEvents(t.db, 'default', 'cair')).filter((e) => (e.body as { billId: string }).billId === billId);
    expect(events.map((e) => e.status)).toEqual(['unmatched']);
    expect(events[0].response).toEqual({ status: 404, body: res.body });
    const ledger = await t.db.query("SELECT 1 FROM patient_payment WHERE tenant_id = 'default' AND bill_id = $1", [billId]);
    expect(ledger).toHaveLength(0);
  });

  it("does not find another tenant's claim (404)", async () => {
    const claim = await claimOwing(10);
    const other = client(t, await t.token(undefined, 'other-tenant'));
    const res = await other.pay({ billId: claim.billId, paymentAmount: 1 });
    expect(res.status).toBe(404);
  });

  it('answers the seed example in the seed shape, amounts as JSON numbers', async () => {
    const claim = await c.claim(patientRef, { billId: `12345-${randomUUID()}`, lifecycle: `lifecycle-${randomUUID()}` });
    await c.claimResponse(claim.id, { total: 200, patientRef });
    const res = await c.pay({ billId: claim.billId, paymentAmount: 150.75, paymentDate: '2024-01-15', paymentMethod: 'Credit Card', paymentTraceId: `pi_${randomUUID()}` });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/application\/json/);
    const lifecycle = claim.extension![0].valueString;
    expect(res.body).toEqual({
      success: true,
      message: 'Payment processed successfully',
      data: { claimId: claim.id, claimLifecycleId: lifecycle, amountSetOnClaim: 150.75 },
    });
    expect(res.text).toContain('"amountSetOnClaim":150.75');
  });

  it('adds excessAmount only when the payment exceeds the open responsibility', async () => {
    const claim = await claimOwing(100);
    const res = await c.pay({ billId: claim.billId, paymentAmount: 120.5 });
    expect(res.body.data).toEqual({ claimId: claim.id, claimLifecycleId: claim.id, amountSetOnClaim: 100, excessAmount: 20.5 });
  });

  it('publishes an OpenAPI 3.1 document of /api, without a token', async () => {
    const res = await request(t.app).get('/api/openapi.json');
    expect(res.status).toBe(200);
    const doc = res.body;
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths).sort()).toEqual([
      '/api/remittances',
      '/api/token',
      '/api/webhooks/claims-vetting/{sourceId}',
      '/api/webhooks/instamed/{sourceId}',
      '/api/webhooks/patient-payment',
      '/api/webhooks/pre-authorization/{sourceId}',
      '/api/webhooks/tyro/{sourceId}',
      '/api/webhooks/tyro/{sourceId}/{urlToken}',
      '/api/webhooks/x12-835/{sourceId}',
    ]);
    const post = doc.paths['/api/webhooks/patient-payment'].post;
    expect(post.security).toEqual([{ bearerAuth: [] }]);
    expect(Object.keys(post.responses).sort()).toEqual(['200', '400', '401', '403', '404', '413', '500']);
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
    const body = doc.components.schemas.PatientPaymentRequest;
    expect(body.required).toEqual(['billId', 'paymentAmount']);
    expect(body.properties.paymentAmount).toMatchObject({ type: 'number', exclusiveMinimum: 0 });
    expect(Object.keys(body.properties).sort()).toEqual(['billId', 'currency', 'paymentAmount', 'paymentDate', 'paymentMethod', 'paymentTraceId']);
    expect(doc.components.schemas.PatientPaymentResponse.properties.data.required).toEqual(['claimId', 'claimLifecycleId', 'amountSetOnClaim']);
    expect(doc.components.schemas.TokenRequest.required).toEqual(['clientId', 'clientSecret']);
    // valid against the OpenAPI 3.1 schema, every $ref resolving
    await expect(SwaggerParser.validate(structuredClone(doc))).resolves.toMatchObject({ openapi: '3.1.0' });
  });
});

describe('500: nothing half-written', () => {
  it('rolls back ledger rows and claim updates when the PaymentReconciliation does not validate', async () => {
    // A Claim whose patient is a Group: R4 only warns about the reference's type, so it is stored,
    // and the payment gets as far as the ledger and the Claim's new version before the
    // PaymentReconciliation's patient-payment-issuer (Reference(Patient)) refuses the Group.
    const group = `Group/${randomUUID()}`;
    const claim = await c.claim(group);
    await c.claimResponse(claim.id, { total: 100, patientRef: group });
    const before = await counts();
    const traceId = `pi_fail_${randomUUID()}`;
    const res = await c.pay({ billId: claim.billId, paymentAmount: 150, paymentTraceId: traceId });
    expect(res.status).toBe(500);
    expect(res.body.error).toBe('Failed to process payment');
    expect(res.body.details).toMatch(/patient-payment-issuer must reference Patient, not Group/);
    expect(Object.keys(res.body).sort()).toEqual(['details', 'error']);

    expect(await counts()).toEqual(before);
    const stored = await c.fhir.read(`Claim/${claim.id}`);
    expect(stored.meta.versionId).toBe('1');
    expect(await c.fhir.search(`PaymentReconciliation?identifier=${traceId}`)).toHaveLength(0);
    // The event itself is kept, as failed, with the answer given.
    const events = (await listEvents(t.db, 'default', 'cair')).filter((e) => e.dedupeKey === `trace:${traceId}`);
    expect(events.map((e) => e.status)).toEqual(['failed']);
    expect(events[0].response).toEqual({ status: 500, body: res.body });
    await expectBooksBalanced(t);
  });

  async function counts(): Promise<Record<string, string>> {
    const result: Record<string, string> = {};
    for (const table of ['ledger_entry', 'patient_payment', 'billing_lifecycle', 'billing_account', 'resource', 'resource_history', 'outbox']) {
      result[table] = (await t.db.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table}`))[0].n;
    }
    return result;
  }
});

describe('concurrency, through the HTTP API', () => {
  it('20 concurrent copies of one payment apply it once and answer alike', async () => {
    const claim = await claimOwing(100);
    const body = { billId: claim.billId, paymentAmount: 60, paymentDate: '2024-03-01', paymentTraceId: `pi_${randomUUID()}` };
    const answers = await Promise.all(Array.from({ length: 20 }, () => c.pay(body)));
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.body).toEqual(answers[0].body);
    }
    expect(answers[0].body.data.amountSetOnClaim).toBe(60);
    expect(await c.paidOn(claim.id)).toBe(60);
    expect(await c.fhir.search(`PaymentReconciliation?identifier=${body.paymentTraceId}`)).toHaveLength(1);
    const received = await t.db.query("SELECT 1 FROM ledger_entry WHERE tenant_id = 'default' AND kind = 'payment.received' AND account_type = 'payment' AND payment_id = (SELECT id FROM patient_payment WHERE tenant_id = 'default' AND payment_trace_id = $1)", [body.paymentTraceId]);
    expect(received).toHaveLength(1);
    const events = (await listEvents(t.db, 'default', 'cair')).filter((e) => e.dedupeKey === `trace:${body.paymentTraceId}`);
    expect(events.filter((e) => e.status === 'processed')).toHaveLength(1);
    expect(events.filter((e) => e.status === 'duplicate')).toHaveLength(19);
    await expectBooksBalanced(t);
  });

  it('10 concurrent different payments on one lifecycle never over-apply', async () => {
    const claim = await claimOwing(100);
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) => c.pay({ billId: claim.billId, paymentAmount: 15, paymentTraceId: `pi_${claim.id}_${i}` })),
    );
    for (const a of answers) expect(a.status).toBe(200);
    const applied = answers.reduce((s, a) => s + Math.round(a.body.data.amountSetOnClaim * 100), 0);
    const excess = answers.reduce((s, a) => s + Math.round((a.body.data.excessAmount ?? 0) * 100), 0);
    expect(applied).toBe(100_00);
    expect(excess).toBe(50_00);
    expect(await c.paidOn(claim.id)).toBe(100);
    const credits = await c.fhir.search(`PatientCredit?patient=${patientRef}&_count=100`);
    expect(credits.length).toBeGreaterThanOrEqual(3);
    await expectBooksBalanced(t);
  });

  it('allocations of a credit race with resends that take it back, and the books still balance', async () => {
    const owner = await c.patient();
    const paid = await c.claim(owner);
    const target = await c.claim(owner);
    await c.claimResponse(paid.id, { total: 100, patientRef: owner });
    await c.claimResponse(target.id, { total: 40, patientRef: owner });
    const traceId = `pi_${randomUUID()}`;
    await c.pay({ billId: paid.billId, paymentAmount: 160, paymentTraceId: traceId }); // 60 credit
    const [credit] = await c.fhir.search(`PatientCredit?patient=${owner}`);
    const allocate = () => c.allocate(credit.id, [{ name: 'claim', valueReference: { reference: `Claim/${target.id}` } }, { name: 'amount', valueDecimal: 10 }]);
    const results = await Promise.all([
      ...Array.from({ length: 6 }, allocate),
      c.pay({ billId: paid.billId, paymentAmount: 130, paymentTraceId: traceId }),
      c.pay({ billId: paid.billId, paymentAmount: 120, paymentTraceId: traceId }),
    ]);
    const allocated = results.slice(0, 6).filter((r) => r.status === 200).length;
    for (const r of results.slice(0, 6)) expect([200, 400]).toContain(r.status);
    expect(allocated).toBeLessThanOrEqual(4); // never more than the 40 open on the target
    expect(await c.paidOn(target.id)).toBeLessThanOrEqual(40);
    await expectBooksBalanced(t);
  });

  it('payments of different lifecycles and resends race without losing or doubling money', async () => {
    const claims = await Promise.all([claimOwing(40), claimOwing(40), claimOwing(40)]);
    const traceIds = claims.map((cl) => `pi_${cl.id}`);
    const sends = [];
    for (let round = 0; round < 4; round++) {
      for (const [i, cl] of claims.entries()) sends.push(c.pay({ billId: cl.billId, paymentAmount: 10 + round * 10, paymentTraceId: traceIds[i] }));
    }
    for (const a of await Promise.all(sends)) expect(a.status).toBe(200);
    for (const cl of claims) {
      const paid = await c.paidOn(cl.id);
      expect([10, 20, 30, 40]).toContain(paid);
    }
    await expectBooksBalanced(t);
  });
});
