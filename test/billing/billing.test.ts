import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Claim, ClaimResponse, Patient, PaymentReconciliation, Resource } from '@medplum/fhirtypes';
import { insertTenant } from '../../src/auth/store.ts';
import { allocateCredit, amount, applyPatientPayment, checkBooks, setClaimIdSystem, toJsonNumber } from '../../src/billing/index.ts';
import type { Amount } from '../../src/billing/index.ts';
import { Money2 } from '../../src/billing/money.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { ISSUER_EXT, PAID_EXT, client, expectBooksBalanced, serverRepo } from '../support/billing.ts';
import { claim as claimFixture } from '../support/fixtures.ts';
import type { Client } from '../support/billing.ts';

/** Billing rules, through the HTTP API (the webhook and /fhir) on a real database. */
let t: TestApp;
let c: Client;
beforeAll(async () => {
  t = await startTestApp();
  c = client(t, await t.token());
});
afterEach(() => expectBooksBalanced(t));
afterAll(() => t.close());

const METHOD_EXT = 'http://hl7.org/fhir/5.0/StructureDefinition/extension-PaymentReconciliation.method';
const trace = (): string => `pi_${randomUUID()}`;

/** A patient with one claim owing `total` (memberliability in ClaimResponse.total). */
async function owing(total?: number) {
  const patientRef = await c.patient();
  const claim = await c.claim(patientRef);
  const cr = total === undefined ? undefined : await c.claimResponse(claim.id, { total, patientRef });
  return { patientRef, claim, cr };
}

async function prOf(traceId: string): Promise<PaymentReconciliation & { id: string }> {
  const found = await c.fhir.search<PaymentReconciliation & { id: string }>(`PaymentReconciliation?identifier=${traceId}`);
  expect(found).toHaveLength(1);
  return found[0];
}

async function creditsOf(patientRef: string): Promise<any[]> {
  return c.fhir.search(`PatientCredit?patient=${patientRef}&_sort=created&_count=100`);
}

describe('applying a payment to the open patient responsibility', () => {
  it('a partial payment is applied whole', async () => {
    const { claim, patientRef } = await owing(100);
    const res = await c.pay({ billId: claim.billId, paymentAmount: 40.25, paymentTraceId: trace() });
    expect(res.body.data).toEqual({ claimId: claim.id, claimLifecycleId: claim.id, amountSetOnClaim: 40.25 });
    expect(await c.paidOn(claim.id)).toBe(40.25);
    expect(await creditsOf(patientRef)).toHaveLength(0);
  });

  it('an exact payment is applied whole, with no excess', async () => {
    const { claim } = await owing(100);
    const res = await c.pay({ billId: claim.billId, paymentAmount: 100 });
    expect(res.body.data).toEqual({ claimId: claim.id, claimLifecycleId: claim.id, amountSetOnClaim: 100 });
    expect(await c.paidOn(claim.id)).toBe(100);
  });

  it('an overpayment applies the responsibility and keeps the excess as an unallocated PatientCredit', async () => {
    const { claim, patientRef, cr } = await owing(100);
    const traceId = trace();
    const res = await c.pay({ billId: claim.billId, paymentAmount: 150.75, paymentDate: '2024-01-15', paymentMethod: 'Credit Card', paymentTraceId: traceId });
    expect(res.body.data).toEqual({ claimId: claim.id, claimLifecycleId: claim.id, amountSetOnClaim: 100, excessAmount: 50.75 });

    const pr = await prOf(traceId);
    expect(pr).toMatchObject({
      identifier: [{ system: 'https://fhir-billing.org/fhir/identifier/payment-trace-id', value: traceId }],
      paymentIdentifier: { system: 'https://fhir-billing.org/fhir/identifier/payment-trace-id', value: traceId },
      status: 'active',
      outcome: 'complete',
      paymentDate: '2024-01-15',
      paymentAmount: { value: 150.75, currency: 'USD' },
      detail: [
        {
          type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/payment-type', code: 'payment' }] },
          request: { reference: `Claim/${claim.id}` },
          response: { reference: `ClaimResponse/${cr!.id}` },
          amount: { value: 100, currency: 'USD' },
        },
        { type: { coding: [{ code: 'advance' }] }, amount: { value: 50.75, currency: 'USD' } },
      ],
    });
    expect(pr.created).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    expect(pr.extension).toEqual(
      expect.arrayContaining([
        { url: ISSUER_EXT, valueReference: { reference: patientRef } },
        { url: METHOD_EXT, valueCodeableConcept: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0570', code: 'CCCA', display: 'Credit Card' }], text: 'Credit Card' } },
      ]),
    );

    const [credit] = await creditsOf(patientRef);
    expect(credit).toMatchObject({
      resourceType: 'PatientCredit',
      status: 'unallocated',
      patient: { reference: patientRef },
      amount: { value: 50.75, currency: 'USD' },
      balance: { value: 50.75, currency: 'USD' },
      source: { reference: `PaymentReconciliation/${pr.id}` },
    });
    expect(credit.created).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    expect(await c.fhir.search(`PatientCredit?source=PaymentReconciliation/${pr.id}`)).toHaveLength(1);
  });

  it('later payments apply only to what is still open', async () => {
    const { claim } = await owing(100);
    expect((await c.pay({ billId: claim.billId, paymentAmount: 60, paymentTraceId: trace() })).body.data.amountSetOnClaim).toBe(60);
    const second = await c.pay({ billId: claim.billId, paymentAmount: 60, paymentTraceId: trace() });
    expect(second.body.data).toMatchObject({ amountSetOnClaim: 40, excessAmount: 20 });
    expect(await c.paidOn(claim.id)).toBe(100);
  });

  it('0.1 + 0.2 settles a 0.30 responsibility exactly', async () => {
    const { claim, patientRef } = await owing(0.3);
    const a = await c.pay({ billId: claim.billId, paymentAmount: 0.1, paymentTraceId: trace() });
    const b = await c.pay({ billId: claim.billId, paymentAmount: 0.2, paymentTraceId: trace() });
    expect(a.body.data).toEqual({ claimId: claim.id, claimLifecycleId: claim.id, amountSetOnClaim: 0.1 });
    expect(b.body.data).toEqual({ claimId: claim.id, claimLifecycleId: claim.id, amountSetOnClaim: 0.2 });
    expect(await c.paidOn(claim.id)).toBe(0.3);
    const raw = (await request(t.app).get(`/fhir/Claim/${claim.id}`).auth(c.token, { type: 'bearer' })).text;
    expect(raw).toContain('"valueMoney":{"value":0.3,"currency":"USD"}');
    // Nothing is open any more: a further cent is all excess.
    const cent = await c.pay({ billId: claim.billId, paymentAmount: 0.01, paymentTraceId: trace() });
    expect(cent.body.data).toMatchObject({ amountSetOnClaim: 0, excessAmount: 0.01 });
    expect(await creditsOf(patientRef)).toHaveLength(1);
    // A client's own float sum arrives as 0.30000000000000004 and is rounded half-even to 0.30.
    const other = await owing(0.3);
    const sum = await c.pay({ billId: other.claim.billId, paymentAmount: 0.1 + 0.2 });
    expect(sum.body.data).toEqual({ claimId: other.claim.id, claimLifecycleId: other.claim.id, amountSetOnClaim: 0.3 });
  });

  it('rounds amounts half-even to cents where they enter', async () => {
    const { claim } = await owing(1000);
    expect((await c.pay({ billId: claim.billId, paymentAmount: 1.005, paymentTraceId: trace() })).body.data.amountSetOnClaim).toBe(1);
    expect((await c.pay({ billId: claim.billId, paymentAmount: 1.015, paymentTraceId: trace() })).body.data.amountSetOnClaim).toBe(1.02);
    expect((await c.pay({ billId: claim.billId, paymentAmount: 2.675, paymentTraceId: trace() })).body.data.amountSetOnClaim).toBe(2.68);
    expect(await c.paidOn(claim.id)).toBe(4.7);
  });

  it('takes the date part of a date-time as written, and today when absent', async () => {
    const { claim } = await owing(100);
    const t1 = trace();
    await c.pay({ billId: claim.billId, paymentAmount: 1, paymentDate: '2024-01-15T23:30:00-05:00', paymentTraceId: t1 });
    expect((await prOf(t1)).paymentDate).toBe('2024-01-15');
    const t2 = trace();
    await c.pay({ billId: claim.billId, paymentAmount: 1, paymentTraceId: t2 });
    expect((await prOf(t2)).paymentDate).toBe(new Date().toISOString().slice(0, 10));
  });

  it('writes a new Claim version only when patientPaidAmount changes (Claim subscribers are told)', async () => {
    const { claim } = await owing(10);
    await c.pay({ billId: claim.billId, paymentAmount: 10, paymentTraceId: trace() });
    await c.pay({ billId: claim.billId, paymentAmount: 5, paymentTraceId: trace() }); // all excess: paid unchanged
    const history = await c.fhir.read(`Claim/${claim.id}/_history`);
    expect(history.entry.map((e: any) => e.resource.meta.versionId)).toEqual(['2', '1']);
    const outbox = await t.db.query("SELECT version_id FROM outbox WHERE tenant_id = 'default' AND resource_type = 'Claim' AND resource_id = $1 ORDER BY version_id", [claim.id]);
    expect(outbox.map((r: any) => r.version_id)).toEqual([1, 2]);
  });
});

describe('lifecycles and patient responsibility', () => {
  it('updates every claim of the lifecycle, and counts payments through any of them', async () => {
    const patientRef = await c.patient();
    const lifecycle = `lc-${randomUUID()}`;
    const original = await c.claim(patientRef, { lifecycle });
    const correction = await c.claim(patientRef, { lifecycle, created: '2024-05-10' });
    await c.claimResponse(original.id, { total: 100, patientRef });
    const res = await c.pay({ billId: correction.billId, paymentAmount: 70, paymentTraceId: trace() });
    expect(res.body.data).toEqual({ claimId: correction.id, claimLifecycleId: lifecycle, amountSetOnClaim: 70 });
    expect(await c.paidOn(original.id)).toBe(70);
    expect(await c.paidOn(correction.id)).toBe(70);
    const viaOriginal = await c.pay({ billId: original.billId, paymentAmount: 50, paymentTraceId: trace() });
    expect(viaOriginal.body.data).toMatchObject({ claimLifecycleId: lifecycle, amountSetOnClaim: 30, excessAmount: 20 });
    expect(await c.paidOn(correction.id)).toBe(100);
    expect(await c.fhir.search(`Claim?lifecycle=${lifecycle}`)).toHaveLength(2);
  });

  it('takes bill ids and lifecycle ids literally, commas, bars and backslashes included', async () => {
    const patientRef = await c.patient();
    const lifecycle = `lc,1|x\\${randomUUID()}`;
    const claim = await c.claim(patientRef, { billId: `A,B|C$\\${randomUUID()}`, lifecycle });
    await c.claim(patientRef, { billId: 'A' }); // what a comma read as OR would also find
    await c.claimResponse(claim.id, { total: 10, patientRef });
    const res = await c.pay({ billId: claim.billId, paymentAmount: 4 });
    expect(res.body.data).toEqual({ claimId: claim.id, claimLifecycleId: lifecycle, amountSetOnClaim: 4 });
    expect(await c.paidOn(claim.id)).toBe(4);
  });

  it("an original without the extension is the lifecycle its corrections name by the original's id", async () => {
    const patientRef = await c.patient();
    const original = await c.claim(patientRef);
    const correction = await c.claim(patientRef, { lifecycle: original.id });
    await c.claimResponse(correction.id, { total: 80, patientRef });
    const res = await c.pay({ billId: original.billId, paymentAmount: 30 });
    expect(res.body.data).toEqual({ claimId: original.id, claimLifecycleId: original.id, amountSetOnClaim: 30 });
    expect(await c.paidOn(correction.id)).toBe(30);
  });

  it('the most recent active ClaimResponse (use claim) of the lifecycle wins', async () => {
    const { claim, patientRef } = await owing();
    await c.claimResponse(claim.id, { total: 50, patientRef, created: '2024-05-02T10:00:00Z' });
    const latest = await c.claimResponse(claim.id, { total: 80, patientRef, created: '2024-06-01T10:00:00Z' });
    await c.claimResponse(claim.id, { total: 500, patientRef, created: '2024-07-01T10:00:00Z', status: 'cancelled' });
    await c.claimResponse(claim.id, { total: 900, patientRef, created: '2024-07-02T10:00:00Z', use: 'preauthorization' });
    const traceId = trace();
    const res = await c.pay({ billId: claim.billId, paymentAmount: 100, paymentTraceId: traceId });
    expect(res.body.data).toMatchObject({ amountSetOnClaim: 80, excessAmount: 20 });
    expect((await prOf(traceId)).detail![0].response).toEqual({ reference: `ClaimResponse/${latest.id}` });
  });

  it('without a memberliability total, sums memberliability over the item adjudications', async () => {
    const patientRef = await c.patient();
    const claim = await c.claim(patientRef);
    await c.claimResponse(claim.id, { items: [30.1, 20.45], patientRef });
    const res = await c.pay({ billId: claim.billId, paymentAmount: 60 });
    expect(res.body.data).toMatchObject({ amountSetOnClaim: 50.55, excessAmount: 9.45 });
  });

  it('without any ClaimResponse, the responsibility is zero: the whole payment becomes a PatientCredit', async () => {
    const { claim, patientRef } = await owing();
    const res = await c.pay({ billId: claim.billId, paymentAmount: 45, paymentTraceId: trace() });
    expect(res.status).toBe(200);
    expect(res.body.data).toEqual({ claimId: claim.id, claimLifecycleId: claim.id, amountSetOnClaim: 0, excessAmount: 45 });
    expect(await c.paidOn(claim.id)).toBe(0);
    const [credit] = await creditsOf(patientRef);
    expect(credit).toMatchObject({ status: 'unallocated', amount: { value: 45 }, balance: { value: 45 } });
    // Once adjudicated, the credit is allocated to the same claim by itself (billing/observer.ts),
    // in the ClaimResponse's transaction; nothing is left open to allocate by hand.
    await c.claimResponse(claim.id, { total: 30, patientRef });
    expect(await c.fhir.read(`PatientCredit/${credit.id}`)).toMatchObject({ status: 'partially-allocated', balance: { value: 15 } });
    expect(await c.paidOn(claim.id)).toBe(30);
    const allocated = await c.allocate(credit.id, [{ name: 'claim', valueReference: { reference: `Claim/${claim.id}` } }]);
    expect(allocated.status).toBe(400);
  });

  it('a bill id matching claims of two lifecycles is a 500 that names them; nothing is written', async () => {
    const patientRef = await c.patient();
    const billId = `dup-${randomUUID()}`;
    await c.claim(patientRef, { billId });
    await c.claim(patientRef, { billId });
    const res = await c.pay({ billId, paymentAmount: 5 });
    expect(res.status).toBe(500);
    expect(res.body.error).toBe('Failed to process payment');
    expect(res.body.details).toMatch(/matches claims of 2 lifecycles/);
  });

  it("looks bill ids up in the tenant's claim-id system", async () => {
    const tc = client(t, await t.token(undefined, 'custom-system'));
    await setClaimIdSystem(t.db, 'custom-system', 'urn:example:elation-bill');
    const patientRef = await tc.patient();
    const claim = await tc.fhir.create({ ...(await tc.fhir.read(`Claim/${(await tc.claim(patientRef)).id}`)), id: undefined, identifier: [{ system: 'urn:example:elation-bill', value: 'B-77' }] });
    const res = await tc.pay({ billId: 'B-77', paymentAmount: 5 });
    expect(res.status).toBe(200);
    expect(res.body.data.claimId).toBe(claim.id);
    await setClaimIdSystem(t.db, 'custom-system', undefined);
    expect((await tc.pay({ billId: 'B-77', paymentAmount: 6 })).status).toBe(404);
    await expectBooksBalanced(t, 'custom-system');
  });
});

describe('idempotency and resends', () => {
  it('the same payment again returns the first result and moves no money', async () => {
    const { claim } = await owing(100);
    const body = { billId: claim.billId, paymentAmount: 120, paymentDate: '2024-02-01', paymentMethod: 'Stripe', paymentTraceId: trace() };
    const first = await c.pay(body);
    const ledgerBefore = await ledgerCount();
    const again = await c.pay(body);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    expect(await ledgerCount()).toBe(ledgerBefore);
    expect((await prOf(body.paymentTraceId)).meta!.versionId).toBe('1');
  });

  it('without a trace id, the same bill, amount, date and method is the same payment', async () => {
    const { claim } = await owing(100);
    const body = { billId: claim.billId, paymentAmount: 30, paymentDate: '2024-02-01', paymentMethod: 'Cash' };
    await c.pay(body);
    await c.pay(body);
    expect(await c.paidOn(claim.id)).toBe(30);
    await c.pay({ ...body, paymentAmount: 31 }); // another payment
    expect(await c.paidOn(claim.id)).toBe(61);
    await c.pay({ ...body, paymentMethod: 'Check' }); // another payment
    expect(await c.paidOn(claim.id)).toBe(91);
  });

  it('a resend with a higher amount applies only the difference (then credits the rest)', async () => {
    const { claim, patientRef } = await owing(100);
    const traceId = trace();
    await c.pay({ billId: claim.billId, paymentAmount: 60, paymentTraceId: traceId });
    const up = await c.pay({ billId: claim.billId, paymentAmount: 90, paymentTraceId: traceId });
    expect(up.body).toEqual({ success: true, message: 'Payment updated successfully', data: { claimId: claim.id, claimLifecycleId: claim.id, amountSetOnClaim: 90 } });
    expect(await c.paidOn(claim.id)).toBe(90);
    const more = await c.pay({ billId: claim.billId, paymentAmount: 130, paymentTraceId: traceId });
    expect(more.body.data).toMatchObject({ amountSetOnClaim: 100, excessAmount: 30 });
    const pr = await prOf(traceId);
    expect(pr.meta!.versionId).toBe('3');
    expect(pr.paymentAmount).toEqual({ value: 130, currency: 'USD' });
    expect((await creditsOf(patientRef))[0]).toMatchObject({ status: 'unallocated', amount: { value: 30 }, balance: { value: 30 } });
    // Back to 90 the same way: the credit goes first (reversed), the claim keeps 90.
    const back = await c.pay({ billId: claim.billId, paymentAmount: 90, paymentTraceId: traceId });
    expect(back.body.data).toEqual({ claimId: claim.id, claimLifecycleId: claim.id, amountSetOnClaim: 90 });
    expect((await creditsOf(patientRef))[0]).toMatchObject({ status: 'reversed', amount: { value: 0 }, balance: { value: 0 } });
    expect(await c.paidOn(claim.id)).toBe(90);
  });

  it('a resend with a lower amount gives back from the credit first, including its allocations, then from the claim', async () => {
    const patientRef = await c.patient();
    const a = await c.claim(patientRef);
    const b = await c.claim(patientRef);
    await c.claimResponse(a.id, { total: 100, patientRef });
    await c.claimResponse(b.id, { total: 40, patientRef });
    const traceId = trace();
    await c.pay({ billId: a.billId, paymentAmount: 150, paymentTraceId: traceId }); // 100 applied, 50 credit
    const [credit] = await creditsOf(patientRef);
    await c.allocate(credit.id, [{ name: 'claim', valueReference: { reference: `Claim/${b.id}` } }, { name: 'amount', valueMoney: { value: 30, currency: 'USD' } }]).expect(200);
    expect(await c.paidOn(b.id)).toBe(30);

    // 150 → 130: 20 from the balance.
    await c.pay({ billId: a.billId, paymentAmount: 130, paymentTraceId: traceId });
    expect(await c.fhir.read(`PatientCredit/${credit.id}`)).toMatchObject({ status: 'allocated', amount: { value: 30 }, balance: { value: 0 } });
    expect(await c.paidOn(b.id)).toBe(30);
    // 130 → 110: 20 taken back from the allocation to b.
    await c.pay({ billId: a.billId, paymentAmount: 110, paymentTraceId: traceId });
    const reduced = await c.fhir.read(`PatientCredit/${credit.id}`);
    expect(reduced).toMatchObject({ status: 'allocated', amount: { value: 10 }, balance: { value: 0 } });
    expect(reduced.allocation).toHaveLength(1);
    expect(reduced.allocation[0]).toMatchObject({ claim: { reference: `Claim/${b.id}` }, amount: { value: 10 } });
    expect(await c.paidOn(b.id)).toBe(10);
    expect(await c.paidOn(a.id)).toBe(100);
    // 110 → 70: the last 10 of the credit, then 30 from the claim.
    const down = await c.pay({ billId: a.billId, paymentAmount: 70, paymentTraceId: traceId });
    expect(down.body.data).toEqual({ claimId: a.id, claimLifecycleId: a.id, amountSetOnClaim: 70 });
    expect(await c.fhir.read(`PatientCredit/${credit.id}`)).toMatchObject({ status: 'reversed', amount: { value: 0 } });
    expect(await c.paidOn(b.id)).toBe(0);
    expect(await c.paidOn(a.id)).toBe(70);
    const kinds = await t.db.query<{ kind: string }>(
      "SELECT DISTINCT kind FROM ledger_entry WHERE tenant_id = 'default' AND payment_id = (SELECT id FROM patient_payment WHERE tenant_id = 'default' AND payment_trace_id = $1)",
      [traceId],
    );
    expect(kinds.map((k) => k.kind).sort()).toEqual(['applied.reversed', 'credit.reduced', 'payment.applied', 'payment.credited', 'payment.received', 'payment.reduced']);
    const creditKinds = await t.db.query<{ kind: string }>("SELECT DISTINCT kind FROM ledger_entry WHERE tenant_id = 'default' AND credit_id = $1", [credit.id]);
    expect(creditKinds.map((k) => k.kind).sort()).toEqual(['allocation.reversed', 'credit.allocated', 'credit.reduced', 'payment.credited']);
  });

  it('a resend with a new date or method updates the PaymentReconciliation and moves no money', async () => {
    const { claim } = await owing(100);
    const traceId = trace();
    await c.pay({ billId: claim.billId, paymentAmount: 10, paymentDate: '2024-01-01', paymentMethod: 'Cash', paymentTraceId: traceId });
    const before = await ledgerCount();
    const res = await c.pay({ billId: claim.billId, paymentAmount: 10, paymentDate: '2024-01-02', paymentMethod: 'Check', paymentTraceId: traceId });
    expect(res.body.message).toBe('Payment updated successfully');
    expect(await ledgerCount()).toBe(before);
    const pr = await prOf(traceId);
    expect(pr).toMatchObject({ paymentDate: '2024-01-02', meta: { versionId: '2' } });
    expect(pr.extension!.find((e) => e.url === METHOD_EXT)!.valueCodeableConcept!.text).toBe('Check');
    // Absent date and method in a resend keep what was recorded.
    await c.pay({ billId: claim.billId, paymentAmount: 10, paymentTraceId: traceId });
    expect((await prOf(traceId)).meta!.versionId).toBe('2');
  });

  it('refuses a trace id already used for another bill (400 on paymentTraceId)', async () => {
    const { claim } = await owing(100);
    const other = await owing(100);
    const traceId = trace();
    await c.pay({ billId: claim.billId, paymentAmount: 10, paymentTraceId: traceId });
    const res = await c.pay({ billId: other.claim.billId, paymentAmount: 10, paymentTraceId: traceId });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error: 'Invalid request body',
      details: [{ path: ['paymentTraceId'], message: `paymentTraceId ${traceId} was already used for billId ${claim.billId}` }],
    });
  });

  async function ledgerCount(): Promise<number> {
    return Number((await t.db.query<{ n: string }>("SELECT count(*)::text AS n FROM ledger_entry WHERE tenant_id = 'default'"))[0].n);
  }
});

describe('PatientCredit $allocate', () => {
  /** A patient with a 50.00 credit (a 150 payment on a 100 claim) and a second claim owing `owes`. */
  async function creditAnd(owes: number) {
    const patientRef = await c.patient();
    const paid = await c.claim(patientRef);
    await c.claimResponse(paid.id, { total: 100, patientRef });
    await c.pay({ billId: paid.billId, paymentAmount: 150, paymentTraceId: trace() });
    const [credit] = await creditsOf(patientRef);
    const target = await c.claim(patientRef, { lifecycle: `other-${randomUUID()}` });
    await c.claimResponse(target.id, { total: owes, patientRef });
    return { patientRef, credit, target, paid };
  }
  const claimParam = (id: string) => ({ name: 'claim', valueReference: { reference: `Claim/${id}` } });

  it('allocates part of a credit to a claim of another lifecycle', async () => {
    const { credit, target } = await creditAnd(80);
    const res = await c.allocate(credit.id, [claimParam(target.id), { name: 'amount', valueMoney: { value: 20.5, currency: 'USD' } }]);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ resourceType: 'PatientCredit', id: credit.id, status: 'partially-allocated', amount: { value: 50 }, balance: { value: 29.5 } });
    expect(res.body.allocation).toEqual([{ id: expect.any(String), claim: { reference: `Claim/${target.id}` }, amount: { value: 20.5, currency: 'USD' }, date: expect.stringMatching(/^\d{4}-/) }]);
    expect(res.headers.etag).toBe('W/"2"');
    expect(await c.paidOn(target.id)).toBe(20.5);
    // valueDecimal works too; the allocations add up.
    const again = await c.allocate(credit.id, [claimParam(target.id), { name: 'amount', valueDecimal: 9.5 }]);
    expect(again.body).toMatchObject({ status: 'partially-allocated', balance: { value: 20 } });
    expect(again.body.allocation).toHaveLength(2);
    expect(await c.paidOn(target.id)).toBe(30);
  });

  it('without an amount, allocates as much as balance and open responsibility allow', async () => {
    const full = await creditAnd(80);
    const res = await c.allocate(full.credit.id, [claimParam(full.target.id)]);
    expect(res.body).toMatchObject({ status: 'allocated', balance: { value: 0 }, allocation: [{ amount: { value: 50 } }] });
    expect(await c.paidOn(full.target.id)).toBe(50);

    const limited = await creditAnd(35);
    const partial = await c.allocate(limited.credit.id, [claimParam(limited.target.id)]);
    expect(partial.body).toMatchObject({ status: 'partially-allocated', balance: { value: 15 } });
    expect(await c.paidOn(limited.target.id)).toBe(35);
  });

  it('refuses what it cannot do, with OperationOutcomes, and changes nothing', async () => {
    const { credit, target, paid } = await creditAnd(30);
    const outcome = async (params: unknown[], status: number, text: RegExp, id = credit.id) => {
      const res = await c.allocate(id, params);
      expect(res.status, JSON.stringify(res.body)).toBe(status);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(res.body.issue[0].details.text).toMatch(text);
    };
    await outcome([claimParam(target.id), { name: 'amount', valueMoney: { value: 60, currency: 'USD' } }], 400, /exceeds the credit's balance of 50.00/);
    await outcome([claimParam(target.id), { name: 'amount', valueMoney: { value: 31, currency: 'USD' } }], 400, /exceeds the open patient responsibility of 30.00/);
    await outcome([claimParam(paid.id)], 400, /has no open patient responsibility/);
    await outcome([claimParam('no-such-claim')], 404, /Claim\/no-such-claim not found/);
    await outcome([claimParam(target.id)], 404, /PatientCredit\/no-such-credit not found/, 'no-such-credit');
    await outcome([{ name: 'claim', valueReference: { reference: 'Patient/1' } }], 400, /must reference a Claim/);
    await outcome([], 400, /claim .* is required/);
    await outcome([{ name: 'claim', valueReference: { reference: { resourceType: 'Patient' } } }], 400, /claim .* is required/);
    await outcome([claimParam(target.id), { name: 'amount', valueMoney: { value: 5, currency: 'EUR' } }], 400, /amount is in EUR but this tenant's books are in USD/);
    await outcome([claimParam(target.id), { name: 'amount', valueDecimal: -1 }], 400, /must be positive/);
    await outcome([claimParam(target.id), { name: 'amount', valueString: '5' }], 400, /valueMoney or valueDecimal/);
    const res = await request(t.app).post(`/fhir/PatientCredit/${credit.id}/$allocate`).auth(c.token, { type: 'bearer' }).send({ resourceType: 'Patient' });
    expect(res.status).toBe(400);
    // Another patient's claim
    const stranger = await owing(100);
    await outcome([claimParam(stranger.claim.id)], 400, /belongs to Patient\//);
    expect(await c.fhir.read(`PatientCredit/${credit.id}`)).toMatchObject({ status: 'unallocated', balance: { value: 50 }, meta: { versionId: '1' } });
    expect(await c.paidOn(target.id)).toBeUndefined();
  });

  it('refuses an empty or reversed credit', async () => {
    const { credit, target } = await creditAnd(100);
    await c.allocate(credit.id, [claimParam(target.id)]).expect(200);
    const empty = await c.allocate(credit.id, [claimParam(target.id)]);
    expect(empty.status).toBe(400);
    expect(empty.body.issue[0].details.text).toMatch(/no balance left/);
  });

  it('needs write on PatientCredit, checked before anything is read (403)', async () => {
    const { credit, target } = await creditAnd(100);
    for (const scopes of ['system/PatientCredit.rs system/Claim.cruds', 'system/PatientCredit.c']) {
      const token = await t.token(scopes);
      const res = await request(t.app).post(`/fhir/PatientCredit/${credit.id}/$allocate`).auth(token, { type: 'bearer' }).send({ resourceType: 'Parameters', parameter: [claimParam(target.id)] });
      expect(res.status, scopes).toBe(403);
      expect(res.body.issue[0].code).toBe('forbidden');
    }
    const writer = await t.token('system/PatientCredit.u');
    const ok = await request(t.app).post(`/fhir/PatientCredit/${credit.id}/$allocate`).auth(writer, { type: 'bearer' }).send({ resourceType: 'Parameters', parameter: [claimParam(target.id)] });
    expect(ok.status).toBe(200);
  });

  it('is announced in the CapabilityStatement, with its OperationDefinition in fhir-profiles/', async () => {
    const metadata = (await request(t.app).get('/fhir/metadata')).body;
    const pc = metadata.rest[0].resource.find((r: { type: string }) => r.type === 'PatientCredit');
    expect(pc.operation).toContainEqual({ name: 'allocate', definition: 'https://fhir-billing.org/fhir/OperationDefinition/PatientCredit-allocate' });
  });

  it("cannot reach another tenant's credit (404)", async () => {
    const { credit, target } = await creditAnd(100);
    const other = client(t, await t.token(undefined, 'tenant-b'));
    const res = await other.allocate(credit.id, [claimParam(target.id)]);
    expect(res.status).toBe(404);
  });
});

describe('what the server writes is valid FHIR', () => {
  it('every resource written by payments, resends and allocations passes $validate', async () => {
    const patientRef = await c.patient();
    const lifecycle = `lc-${randomUUID()}`;
    const a = await c.claim(patientRef, { lifecycle });
    const a2 = await c.claim(patientRef, { lifecycle });
    const b = await c.claim(patientRef);
    await c.claimResponse(a.id, { total: 100, patientRef });
    await c.claimResponse(b.id, { items: [20], patientRef });
    const traceId = trace();
    await c.pay({ billId: a.billId, paymentAmount: 150, paymentDate: '2024-01-15T10:30:00Z', paymentMethod: 'Stripe', paymentTraceId: traceId });
    await c.pay({ billId: a2.billId, paymentAmount: 5, paymentMethod: 'Debit Card' });
    const [credit] = await creditsOf(patientRef);
    await c.allocate(credit.id, [{ name: 'claim', valueReference: { reference: `Claim/${b.id}` } }]).expect(200);
    await c.pay({ billId: a.billId, paymentAmount: 120, paymentTraceId: traceId });
    const refs = [
      `Claim/${a.id}`,
      `Claim/${a2.id}`,
      `Claim/${b.id}`,
      ...(await c.fhir.search(`PaymentReconciliation?_count=100`)).map((r) => `PaymentReconciliation/${r.id}`),
      ...(await creditsOf(patientRef)).map((r) => `PatientCredit/${r.id}`),
    ];
    expect(refs.length).toBeGreaterThanOrEqual(6);
    for (const ref of refs) {
      const outcome = await c.fhir.validate(ref);
      expect(outcome.issue, ref).toEqual([{ severity: 'information', code: 'informational', details: { text: 'Validation successful: no issues' } }]);
    }
  });

  it('stores every Money.value as a JSON number', async () => {
    const rows = await t.db.query<{ content: string }>("SELECT content FROM resource WHERE tenant_id = 'default' AND resource_type IN ('PaymentReconciliation', 'PatientCredit')");
    expect(rows.length).toBeGreaterThan(0);
    const moneys: unknown[] = [];
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') {
        if ('currency' in v) moneys.push((v as { value?: unknown }).value);
        Object.values(v).forEach(walk);
      }
    };
    for (const r of rows) walk(JSON.parse(r.content));
    expect(moneys.length).toBeGreaterThan(rows.length);
    for (const m of moneys) expect(typeof m).toBe('number');
  });

  it('answers the claim the issuer extension names as a Patient reference', async () => {
    const prs = await c.fhir.search<PaymentReconciliation>('PaymentReconciliation?_count=5');
    for (const pr of prs) expect(pr.extension!.find((e) => e.url === ISSUER_EXT)!.valueReference!.reference).toMatch(/^Patient\//);
    expect(PAID_EXT).toMatch(/patient-paid-amount$/);
  });
});

describe('properties over random sequences of payments, resends and allocations (fast-check)', () => {
  type Op =
    | { kind: 'pay'; claim: number; trace: number | null; cents: number }
    | { kind: 'allocate'; credit: number; claim: number; cents: number | null };
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('pay' as const), claim: fc.integer({ min: 0, max: 2 }), trace: fc.option(fc.integer({ min: 0, max: 3 }), { nil: null }), cents: fc.integer({ min: 1, max: 15_000 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('allocate' as const), credit: fc.nat(5), claim: fc.integer({ min: 0, max: 2 }), cents: fc.option(fc.integer({ min: 1, max: 8_000 }), { nil: null }) }) },
  );
  const RUNS = Number(process.env.FC_RUNS ?? 25);
  let run = 0;

  it(`applied + credited = received, never over-applied, books balanced (${RUNS} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.tuple(fc.integer({ min: 0, max: 20_000 }), fc.integer({ min: 0, max: 20_000 })), fc.array(op, { minLength: 1, maxLength: 10 }), async ([centsA, centsB], ops) => {
        const tenant = `prop-${++run}-${randomUUID().slice(0, 8)}`;
        await insertTenant(t.db, tenant, tenant);
        const repo = serverRepo(t, tenant);
        const patient = await repo.createResource<Patient>({ resourceType: 'Patient', name: [{ family: 'Prop' }] });
        const patientRef = `Patient/${patient.id}`;
        // Claims 0 and 1 owe centsA and centsB (one through items); claim 2 has no ClaimResponse.
        const responsibility = [new Money2(centsA).div(100), new Money2(centsB).div(100), new Money2(0)];
        const claims: Claim[] = [];
        for (let i = 0; i < 3; i++) claims.push(await repo.createResource(claimFixture(patientRef, `${tenant}-bill-${i}`)));
        const category = { coding: [{ system: 'http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudication', code: 'memberliability' }] };
        for (let i = 0; i < 2; i++) {
          const money = { value: toJsonNumber(responsibility[i]), currency: 'USD' as const };
          await repo.createResource<ClaimResponse>({
            resourceType: 'ClaimResponse', status: 'active', use: 'claim', outcome: 'complete', created: '2024-05-02T10:00:00Z',
            type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
            patient: { reference: patientRef }, insurer: { display: 'Payer' }, request: { reference: `Claim/${claims[i].id}` },
            ...(i === 0 ? { total: [{ category, amount: money }] } : { item: [{ itemSequence: 1, adjudication: [{ category, amount: money }] }] }),
          });
        }

        const sent = new Map<string, { claim: number; amount: Amount }>(); // identity → what the payment now is
        for (const o of ops) {
          if (o.kind === 'pay') {
            const value = new Money2(o.cents).div(100);
            const traceId = o.trace === null ? undefined : `t${o.trace}`;
            const identity = traceId ?? `${o.claim}|${value.toFixed(2)}`;
            const result = await applyPatientPayment(repo, { source: 'prop', billId: `${tenant}-bill-${o.claim}`, amount: amount(value), ...(traceId && { paymentTraceId: traceId }) });
            const known = sent.get(identity);
            if (known && known.claim !== o.claim) {
              expect(result).toMatchObject({ ok: false, code: 'conflict' });
              continue;
            }
            if (!result.ok) throw new Error(`payment refused: ${result.message}`);
            if (result.value.status === 'unmatched') throw new Error('a known claim is never unmatched');
            // Each payment's money is applied or credited, never both more nor less.
            expect(result.value.amountSetOnClaim.plus(result.value.excessAmount).eq(value)).toBe(true);
            sent.set(identity, { claim: o.claim, amount: value });
          } else {
            const credits = await repo.searchResources<Resource>({ resourceType: 'PatientCredit' as Resource['resourceType'], sortRules: [{ code: '_id' }] });
            if (credits.length === 0) continue;
            const credit = credits[o.credit % credits.length];
            const result = await allocateCredit(repo, { creditId: credit.id!, claim: `Claim/${claims[o.claim].id}`, ...(o.cents !== null && { amount: amount(new Money2(o.cents).div(100)) }) });
            if (!result.ok) expect(result.code).toBe('invalid');
            else if (o.cents !== null) expect(result.value.allocated.eq(new Money2(o.cents).div(100))).toBe(true);
          }
        }

        expect(await checkBooks(repo)).toEqual([]);
        const received = [...sent.values()].reduce((s, p) => s.plus(p.amount), new Money2(0));
        let paidTotal = new Money2(0);
        for (const [i, claim] of claims.entries()) {
          const rows = await t.db.query<{ paid: string }>('SELECT patient_paid_amount::text AS paid FROM billing_lifecycle WHERE tenant_id = $1 AND lifecycle_id = $2', [tenant, claim.id]);
          const paid = new Money2(rows[0]?.paid ?? 0);
          expect(paid.lte(responsibility[i]), `claim ${i} paid ${paid} of ${responsibility[i]}`).toBe(true);
          paidTotal = paidTotal.plus(paid);
        }
        const balances = await t.db.query<{ total: string }>("SELECT COALESCE(sum(amount), 0)::text AS total FROM ledger_entry WHERE tenant_id = $1 AND account_type = 'credit'", [tenant]);
        expect(paidTotal.plus(balances[0].total).eq(received), `received ${received}, applied ${paidTotal}, credit ${balances[0].total}`).toBe(true);
        const payments = await t.db.query<{ total: string }>('SELECT COALESCE(sum(amount), 0)::text AS total FROM patient_payment WHERE tenant_id = $1', [tenant]);
        expect(new Money2(payments[0].total).eq(received)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  }, 120_000);
});
