import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Bundle, Claim } from '@medplum/fhirtypes';
import { amount, applyPatientPayment, reversePayment } from '../../src/billing/index.ts';
import type { PatientPaymentInput } from '../../src/billing/index.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { client, expectBooksBalanced, serverRepo } from '../support/billing.ts';
import type { Client } from '../support/billing.ts';
import { claim as claimFixture } from '../support/fixtures.ts';

/**
 * Payments that wait (suspense): held for a claim that is not here yet, re-matched when any writer
 * creates it; credit waiting for a ClaimResponse; the operator's /admin/unmatched-payments.
 */
let t: TestApp;
let c: Client;
let admin: string;
beforeAll(async () => {
  t = await startTestApp();
  c = client(t, await t.token());
  admin = await t.token('admin');
});
afterEach(() => expectBooksBalanced(t));
afterAll(() => t.close());

const trace = (): string => `tx_${randomUUID()}`;
const billOf = (): string => `bill-${randomUUID()}`;

async function hold(billId: string, value: number, extra: Partial<PatientPaymentInput> = {}) {
  const input = { source: 'test', billId, amount: amount(value), paymentTraceId: trace(), whenClaimUnknown: 'hold' as const, ...extra };
  const result = await applyPatientPayment(serverRepo(t), input);
  if (!result.ok || result.value.status !== 'unmatched') throw new Error(`not held: ${JSON.stringify(result)}`);
  return { ...result.value, traceId: input.paymentTraceId };
}

const listed = async (query = '') => {
  const res = await request(t.app).get(`/admin/unmatched-payments${query}`).auth(admin, { type: 'bearer' });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.unmatchedPayments as { id: string; billId: string; source: string; amount: number; ageSeconds: number }[];
};
const adminPost = (path: string, body?: object) => request(t.app).post(`/admin/unmatched-payments${path}`).auth(admin, { type: 'bearer' }).send(body);

describe('a payment held for a claim that is not here yet', () => {
  it('applies by itself when the Claim is created through /fhir, exactly once', async () => {
    const patientRef = await c.patient();
    const billId = billOf();
    const held = await hold(billId, 40);
    expect(held).toMatchObject({ held: 'new', mode: 'hold', unmatchedStatus: 'waiting' });
    expect((await listed('?source=test')).map((u) => u.id)).toContain(held.unmatchedPaymentId);
    // The same payment again: still one, unchanged.
    const again = await applyPatientPayment(serverRepo(t), { source: 'test', billId, amount: amount(40), paymentTraceId: held.traceId, whenClaimUnknown: 'hold' });
    expect(again).toMatchObject({ ok: true, value: { status: 'unmatched', held: 'unchanged', unmatchedPaymentId: held.unmatchedPaymentId } });

    const claim = await c.claim(patientRef, { billId });
    // No ClaimResponse yet: the whole payment is the patient's credit.
    const [credit] = await c.fhir.search(`PatientCredit?patient=${patientRef}`);
    expect(credit).toMatchObject({ amount: { value: 40 }, balance: { value: 40 } });
    expect((await listed()).map((u) => u.id)).not.toContain(held.unmatchedPaymentId);
    const prs = await c.fhir.search(`PaymentReconciliation?identifier=${held.traceId}`);
    expect(prs).toHaveLength(1);

    // A second claim with the same bill id finds nothing left to apply.
    await c.claim(patientRef, { billId, lifecycle: claim.id });
    expect(await c.fhir.search(`PaymentReconciliation?identifier=${held.traceId}`)).toHaveLength(1);
    expect(await adminPost(`/${held.unmatchedPaymentId}/apply`)).toMatchObject({ status: 409 });
  });

  it('applies when the Claim arrives in a transaction Bundle', async () => {
    const patientRef = await c.patient();
    const billId = billOf();
    const held = await hold(billId, 25);
    const bundle: Bundle = { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: claimFixture(patientRef, billId), request: { method: 'POST', url: 'Claim' } }] };
    const res = await request(t.app).post('/fhir').auth(c.token, { type: 'bearer' }).send(bundle);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(await c.fhir.search(`PaymentReconciliation?identifier=${held.traceId}`)).toHaveLength(1);
    const [credit] = await c.fhir.search(`PatientCredit?patient=${patientRef}`);
    expect(credit).toMatchObject({ balance: { value: 25 } });
  });

  it('a refund that came before its held original applies with it', async () => {
    const patientRef = await c.patient();
    const billId = billOf();
    const held = await hold(billId, 50);
    const refund = await reversePayment(serverRepo(t), { source: 'test', kind: 'refund', originalTraceId: held.traceId, reversalTraceId: trace(), amount: amount(20) });
    expect(refund).toMatchObject({ ok: true, value: { status: 'waiting' } });
    await c.claim(patientRef, { billId });
    const [credit] = await c.fhir.search(`PatientCredit?patient=${patientRef}`);
    expect(credit).toMatchObject({ amount: { value: 30 }, balance: { value: 30 } });
  });

  it('discarding it refuses the reversals that waited for it; a reversal arriving later is refused at once', async () => {
    const billId = billOf();
    const held = await hold(billId, 50);
    const refundId = trace();
    const refund = await reversePayment(serverRepo(t), { source: 'test', kind: 'refund', originalTraceId: held.traceId, reversalTraceId: refundId, amount: amount(20) });
    expect(refund).toMatchObject({ ok: true, value: { status: 'waiting' } });
    expect((await adminPost(`/${held.unmatchedPaymentId}/discard`, { reason: 'refunded by the processor' })).status).toBe(200);
    // The same refund again: it is no longer waiting, it was refused, saying why.
    const again = await reversePayment(serverRepo(t), { source: 'test', kind: 'refund', originalTraceId: held.traceId, reversalTraceId: refundId, amount: amount(20) });
    expect(again).toMatchObject({ ok: false, code: 'invalid', message: expect.stringMatching(/discarded \(refunded by the processor\)/) });
    const voided = await reversePayment(serverRepo(t), { source: 'test', kind: 'void', originalTraceId: held.traceId });
    expect(voided).toMatchObject({ ok: false, code: 'invalid', field: 'originalTraceId', message: expect.stringMatching(/nothing to void/) });
    // And the Claim arriving later takes nothing: the payment stays discarded.
    const patientRef = await c.patient();
    await c.claim(patientRef, { billId });
    expect(await c.fhir.search(`PatientCredit?patient=${patientRef}`)).toHaveLength(0);
  });

  it('a Claim that cannot take the payment still saves, and the payment keeps waiting', async () => {
    const billId = billOf();
    const held = await hold(billId, 10);
    // A Claim whose patient is a logical reference only: billing cannot book it to an account.
    const bad: Claim = { ...claimFixture('Patient/x', billId), patient: { identifier: { system: 'urn:mrn', value: '1' } } };
    await c.fhir.create(bad);
    expect((await listed()).map((u) => u.id)).toContain(held.unmatchedPaymentId);
    const res = await adminPost(`/${held.unmatchedPaymentId}/discard`, { reason: 'claim has no patient' });
    expect(res.status).toBe(200);
  });
});

describe('an identity already recorded', () => {
  it('a payment whose trace id was used for another bill is a conflict, never held beside the first', async () => {
    const claim = await c.claim(await c.patient());
    const traceId = trace();
    const paid = await applyPatientPayment(serverRepo(t), { source: 'test', billId: claim.billId, amount: amount(5), paymentTraceId: traceId });
    expect(paid.ok).toBe(true);
    const again = await applyPatientPayment(serverRepo(t), { source: 'test', billId: billOf(), amount: amount(5), paymentTraceId: traceId, whenClaimUnknown: 'hold' });
    expect(again).toMatchObject({ ok: false, code: 'conflict' });
    expect((await listed()).some((u) => u.billId === claim.billId)).toBe(false);
  });
});

describe('credit waiting for its ClaimResponse', () => {
  it('a prepayment at the desk applies when the ClaimResponse arrives, up to the responsibility', async () => {
    const patientRef = await c.patient();
    const claim = await c.claim(patientRef);
    const pay = await c.pay({ billId: claim.billId, paymentAmount: 80, paymentTraceId: trace() });
    expect(pay.body.data).toMatchObject({ amountSetOnClaim: 0, excessAmount: 80 });
    await c.claimResponse(claim.id, { total: 50, patientRef });
    expect(await c.paidOn(claim.id)).toBe(50);
    const [credit] = await c.fhir.search(`PatientCredit?patient=${patientRef}`);
    expect(credit).toMatchObject({ status: 'partially-allocated', balance: { value: 30 } });
    // A newer ClaimResponse raising the responsibility takes more of the credit.
    await c.claimResponse(claim.id, { total: 70, patientRef, created: '2024-06-01T00:00:00Z' });
    expect(await c.paidOn(claim.id)).toBe(70);
  });

  it('a ClaimResponse billing cannot read (another currency) still saves; the credit keeps waiting', async () => {
    const patientRef = await c.patient();
    const claim = await c.claim(patientRef);
    await c.pay({ billId: claim.billId, paymentAmount: 10, paymentTraceId: trace() });
    const usd = await c.claimResponse(claim.id, { total: 5, patientRef, status: 'draft' });
    const { id: _id, meta: _meta, ...rest } = usd;
    const eur = { ...rest, status: 'active' as const, total: rest.total!.map((t) => ({ ...t, amount: { value: t.amount.value, currency: 'EUR' as const } })) };
    await c.fhir.create(eur);
    expect(await c.paidOn(claim.id)).toBe(0);
    const [credit] = await c.fhir.search(`PatientCredit?patient=${patientRef}`);
    expect(credit).toMatchObject({ status: 'unallocated', balance: { value: 10 } });
  });

  it('two payments: the oldest credit goes first', async () => {
    const patientRef = await c.patient();
    const claim = await c.claim(patientRef);
    await c.pay({ billId: claim.billId, paymentAmount: 10, paymentTraceId: trace() });
    await c.pay({ billId: claim.billId, paymentAmount: 15, paymentTraceId: trace() });
    await c.claimResponse(claim.id, { total: 20, patientRef });
    expect(await c.paidOn(claim.id)).toBe(20);
    const credits = await c.fhir.search(`PatientCredit?patient=${patientRef}&_sort=created`);
    expect(credits.map((x: any) => x.balance.value)).toEqual([0, 5]);
  });
});

describe('the Cair webhook and the operator', () => {
  it('an unknown bill still answers 404, is listed, and an operator applies it once its claim exists', async () => {
    const billId = billOf();
    const res = await c.pay({ billId, paymentAmount: 12.5, paymentTraceId: trace() });
    expect(res.status).toBe(404);
    const mine = (await listed('?tenant=default&source=cair')).find((u) => u.billId === billId);
    expect(mine).toMatchObject({ source: 'cair', amount: 12.5 });
    expect(mine!.ageSeconds).toBeGreaterThanOrEqual(0);
    // Still no claim: the operator's apply is refused and it keeps waiting.
    expect(await adminPost(`/${mine!.id}/apply`)).toMatchObject({ status: 404 });

    const patientRef = await c.patient();
    const claim = await c.claim(patientRef, { billId });
    await c.claimResponse(claim.id, { total: 100, patientRef });
    // hold-for-operator: creating the claim did not apply it.
    expect(await c.paidOn(claim.id)).toBeUndefined();
    const applied = await adminPost(`/${mine!.id}/apply`);
    expect(applied.status, JSON.stringify(applied.body)).toBe(200);
    expect(applied.body).toMatchObject({ status: 'applied', claimId: claim.id, amountSetOnClaim: 12.5, excessAmount: 0 });
    expect(await c.paidOn(claim.id)).toBe(12.5);
    expect(await adminPost(`/${mine!.id}/apply`)).toMatchObject({ status: 409 });
    expect(await adminPost(`/${mine!.id}/discard`, { reason: 'late' })).toMatchObject({ status: 409 });
  });

  it('a resend once the claim exists applies it and takes it off the list', async () => {
    const billId = billOf();
    const body = { billId, paymentAmount: 7, paymentTraceId: trace() };
    expect((await c.pay(body)).status).toBe(404);
    const mine = (await listed()).find((u) => u.billId === billId)!;
    const patientRef = await c.patient();
    const claim = await c.claim(patientRef, { billId });
    const res = await c.pay(body);
    expect(res.status).toBe(200);
    expect(await c.fhir.search(`PatientCredit?patient=${patientRef}`)).toHaveLength(1);
    expect((await listed()).map((u) => u.id)).not.toContain(mine.id);
    expect(await adminPost(`/${mine.id}/apply`)).toMatchObject({ status: 409 });
    expect(claim.id).toBeDefined();
  });

  it('discards with a reason; refuses bad requests and callers without the admin scope', async () => {
    const billId = billOf();
    await c.pay({ billId, paymentAmount: 5, paymentTraceId: trace() });
    const mine = (await listed()).find((u) => u.billId === billId)!;
    expect(await adminPost(`/${mine.id}/discard`, {})).toMatchObject({ status: 400 });
    expect(await adminPost(`/${mine.id}/discard`, { reason: '   ' })).toMatchObject({ status: 400 });
    expect(await adminPost(`/${randomUUID()}/discard`, { reason: 'x' })).toMatchObject({ status: 404 });
    expect(await adminPost('/not%20an%20id/apply')).toMatchObject({ status: 404 });
    // A tenant client needs system/PaymentReconciliation.rs to list, and .c (or webhook) to discard.
    const forbidden = await request(t.app).get('/admin/unmatched-payments').auth(await t.token('system/Claim.rs'), { type: 'bearer' });
    expect(forbidden.status).toBe(403);
    const reader = await t.token('system/PaymentReconciliation.rs');
    expect((await request(t.app).post(`/admin/unmatched-payments/${mine.id}/discard`).auth(reader, { type: 'bearer' }).send({ reason: 'x' })).status).toBe(403);
    const done = await adminPost(`/${mine.id}/discard`, { reason: 'duplicate of a cash payment' });
    expect(done.status).toBe(200);
    expect(done.body).toEqual({ unmatchedPaymentId: mine.id, status: 'discarded', reason: 'duplicate of a cash payment' });
    expect((await listed()).map((u) => u.id)).not.toContain(mine.id);
  });
});
