import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PaymentReconciliation } from '@medplum/fhirtypes';
import { amount, applyPatientPayment, recordSettlement, reversePayment } from '../../src/billing/index.ts';
import type { ReversalInput } from '../../src/billing/index.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { client, expectBooksBalanced, serverRepo } from '../support/billing.ts';
import type { Client } from '../support/billing.ts';

/**
 * Reversals (void, refund, return, chargeback) and settlement, as commands on a real repository
 * (the InstaMed route is another helper's), with the books read back through /fhir.
 */
let t: TestApp;
let c: Client;
beforeAll(async () => {
  t = await startTestApp();
  c = client(t, await t.token());
});
afterEach(() => expectBooksBalanced(t));
afterAll(() => t.close());

const trace = (): string => `tx_${randomUUID()}`;
const SETTLEMENT_EXT = 'https://fhir-billing.org/fhir/StructureDefinition/payment-settlement-date';
const LAST_FOUR_EXT = 'https://fhir-billing.org/fhir/StructureDefinition/payment-card-last-four';

async function owing(total?: number) {
  const patientRef = await c.patient();
  const claim = await c.claim(patientRef);
  if (total !== undefined) await c.claimResponse(claim.id, { total, patientRef });
  return { patientRef, claim };
}

async function pay(billId: string, value: number, traceId = trace()) {
  const result = await applyPatientPayment(serverRepo(t), { source: 'test', billId, amount: amount(value), paymentTraceId: traceId });
  if (!result.ok || result.value.status === 'unmatched') throw new Error(`payment not applied: ${JSON.stringify(result)}`);
  return { traceId, ...result.value };
}

const reverse = (input: Omit<ReversalInput, 'source'> & { value?: number }) => {
  const { value, ...rest } = input;
  return reversePayment(serverRepo(t), { source: 'test', ...rest, ...(value !== undefined && { amount: amount(value) }) });
};

async function prByTrace(traceId: string): Promise<PaymentReconciliation> {
  const found = await c.fhir.search<PaymentReconciliation>(`PaymentReconciliation?identifier=${traceId}`);
  expect(found).toHaveLength(1);
  return found[0];
}

describe('void', () => {
  it('cancels the PaymentReconciliation and gives back what was applied and credited', async () => {
    const { claim, patientRef } = await owing(60);
    const p = await pay(claim.billId, 100);
    expect(await c.paidOn(claim.id)).toBe(60);
    const result = await reverse({ kind: 'void', originalTraceId: p.traceId });
    expect(result).toMatchObject({ ok: true, value: { status: 'created', kind: 'void' } });
    if (!result.ok) return;
    expect(result.value.amount.toFixed(2)).toBe('100.00');
    expect(result.value.fromClaim.toFixed(2)).toBe('60.00');
    expect(result.value.fromCredit.toFixed(2)).toBe('40.00');
    expect(await c.paidOn(claim.id)).toBe(0);
    const pr = await prByTrace(p.traceId);
    expect(pr.status).toBe('cancelled');
    const [credit] = await c.fhir.search(`PatientCredit?patient=${patientRef}`);
    expect(credit).toMatchObject({ status: 'reversed', amount: { value: 0 }, balance: { value: 0 } });
  });

  it('takes an allocated credit back from the claims it went to', async () => {
    const { claim, patientRef } = await owing(10);
    const p = await pay(claim.billId, 50);
    const other = await c.claim(patientRef);
    await c.claimResponse(other.id, { total: 30, patientRef });
    const res = await c.allocate(p.patientCreditId!, [{ name: 'claim', valueReference: { reference: `Claim/${other.id}` } }]);
    expect(res.status).toBe(200);
    expect(await c.paidOn(other.id)).toBe(30);
    const result = await reverse({ kind: 'void', originalTraceId: p.traceId });
    expect(result.ok).toBe(true);
    expect(await c.paidOn(other.id)).toBe(0);
    expect(await c.paidOn(claim.id)).toBe(0);
  });

  it('the same void again is unchanged; a resend of the voided payment changes nothing', async () => {
    const { claim } = await owing(100);
    const p = await pay(claim.billId, 80);
    await reverse({ kind: 'void', originalTraceId: p.traceId });
    expect(await reverse({ kind: 'void', originalTraceId: p.traceId })).toMatchObject({ ok: true, value: { status: 'unchanged' } });
    const again = await applyPatientPayment(serverRepo(t), { source: 'test', billId: claim.billId, amount: amount(80), paymentTraceId: p.traceId });
    expect(again).toMatchObject({ ok: true, value: { status: 'unchanged' } });
    const changed = await applyPatientPayment(serverRepo(t), { source: 'test', billId: claim.billId, amount: amount(90), paymentTraceId: p.traceId });
    expect(changed).toMatchObject({ ok: false, code: 'conflict' });
    expect(await c.paidOn(claim.id)).toBe(0);
  });

  it('a void after a partial refund nets the payment to zero: the refund is cancelled with the original', async () => {
    const { claim } = await owing(100);
    const p = await pay(claim.billId, 50);
    const refundId = trace();
    const refund = await reverse({ kind: 'refund', originalTraceId: p.traceId, reversalTraceId: refundId, value: 0.01 });
    expect(refund).toMatchObject({ ok: true, value: { status: 'created' } });
    const voided = await reverse({ kind: 'void', originalTraceId: p.traceId });
    expect(voided.ok && voided.value.amount.toFixed(2)).toBe('49.99');
    expect((await prByTrace(p.traceId)).status).toBe('cancelled');
    expect((await prByTrace(refundId)).status).toBe('cancelled');
    expect(await c.paidOn(claim.id)).toBe(0);
  });
});

describe('refund, return, chargeback', () => {
  it('a partial refund takes unallocated credit first, then the claim, on a new PaymentReconciliation', async () => {
    const { claim } = await owing(60);
    const p = await pay(claim.billId, 100);
    const refundId = trace();
    const result = await reverse({ kind: 'refund', originalTraceId: p.traceId, reversalTraceId: refundId, value: 50, date: '2026-11-30' });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value).toMatchObject({ status: 'created', kind: 'refund' });
    expect(result.value.fromCredit.toFixed(2)).toBe('40.00');
    expect(result.value.fromClaim.toFixed(2)).toBe('10.00');
    expect(result.value.remaining?.toFixed(2)).toBe('50.00');
    expect(await c.paidOn(claim.id)).toBe(50);
    const pr = await prByTrace(refundId);
    expect(pr).toMatchObject({ status: 'active', paymentAmount: { value: -50 }, paymentDate: '2026-11-30' });
    expect(pr.detail?.every((d) => d.type?.coding?.[0].code === 'adjustment' && d.predecessor?.value === p.traceId)).toBe(true);
    expect((await prByTrace(p.traceId)).status).toBe('active');
  });

  it('reversals of one payment never exceed it, and the refused one moves nothing', async () => {
    const { claim } = await owing(100);
    const p = await pay(claim.billId, 100);
    expect(await reverse({ kind: 'chargeback', originalTraceId: p.traceId, reversalTraceId: trace(), value: 70 })).toMatchObject({ ok: true });
    const over = await reverse({ kind: 'return', originalTraceId: p.traceId, reversalTraceId: trace(), value: 30.01 });
    expect(over).toMatchObject({ ok: false, code: 'invalid', field: 'amount' });
    expect(await c.paidOn(claim.id)).toBe(30);
    const rest = await reverse({ kind: 'return', originalTraceId: p.traceId, reversalTraceId: trace() });
    expect(rest.ok && rest.value.amount.toFixed(2)).toBe('30.00');
    expect(await reverse({ kind: 'refund', originalTraceId: p.traceId, reversalTraceId: trace(), value: 1 })).toMatchObject({ ok: false, code: 'invalid' });
    expect(await reverse({ kind: 'void', originalTraceId: p.traceId })).toMatchObject({ ok: false, code: 'invalid' });
    expect(await c.paidOn(claim.id)).toBe(0);
  });

  it('the same refund again is unchanged; the same id with another amount conflicts', async () => {
    const { claim } = await owing(100);
    const p = await pay(claim.billId, 100);
    const id = trace();
    await reverse({ kind: 'refund', originalTraceId: p.traceId, reversalTraceId: id, value: 20 });
    expect(await reverse({ kind: 'refund', originalTraceId: p.traceId, reversalTraceId: id, value: 20 })).toMatchObject({ ok: true, value: { status: 'unchanged' } });
    expect(await reverse({ kind: 'refund', originalTraceId: p.traceId, reversalTraceId: id, value: 25 })).toMatchObject({ ok: false, code: 'conflict' });
    expect(await c.paidOn(claim.id)).toBe(80);
  });

  it('a refund before its original waits, then applies when the original arrives', async () => {
    const { claim } = await owing(100);
    const original = trace();
    const early = await reverse({ kind: 'refund', originalTraceId: original, reversalTraceId: trace(), value: 25 });
    expect(early).toMatchObject({ ok: true, value: { status: 'waiting' } });
    const voidEarly = await reverse({ kind: 'void', originalTraceId: trace() });
    expect(voidEarly).toMatchObject({ ok: true, value: { status: 'waiting' } });
    await pay(claim.billId, 100, original);
    expect(await c.paidOn(claim.id)).toBe(75);
  });

  it('refuses a bad request before looking at the books', async () => {
    expect(await reverse({ kind: 'refund', originalTraceId: trace() })).toMatchObject({ ok: false, code: 'invalid', field: 'reversalTraceId' });
    expect(await reverse({ kind: 'void', originalTraceId: trace(), reversalTraceId: trace() })).toMatchObject({ ok: false, code: 'invalid' });
  });
});

describe('concurrency (real concurrency on PostgreSQL)', () => {
  it('a reversal racing its original is applied exactly once, whichever commits first', async () => {
    const { claim } = await owing(1000);
    const races = Array.from({ length: 6 }, () => ({ original: trace(), refund: trace() }));
    await Promise.all(
      races.flatMap((r) => [
        applyPatientPayment(serverRepo(t), { source: 'test', billId: claim.billId, amount: amount(30), paymentTraceId: r.original }),
        reverse({ kind: 'refund', originalTraceId: r.original, reversalTraceId: r.refund, value: 10 }),
        reverse({ kind: 'refund', originalTraceId: r.original, reversalTraceId: r.refund, value: 10 }),
      ]),
    );
    const rows = await t.db.query<{ reversed: string }>(
      'SELECT reversed_amount::text AS reversed FROM patient_payment WHERE tenant_id = $1 AND payment_trace_id = ANY($2::text[])',
      ['default', races.map((r) => r.original)],
    );
    expect(rows.map((r) => r.reversed)).toEqual(races.map(() => '10.00'));
    expect(await c.paidOn(claim.id)).toBe(6 * 20);
  });

  it('two copies of one void at once: one gives the money back, the other is unchanged', async () => {
    const { claim } = await owing(100);
    const p = await pay(claim.billId, 100);
    const results = await Promise.all([reverse({ kind: 'void', originalTraceId: p.traceId }), reverse({ kind: 'void', originalTraceId: p.traceId })]);
    expect(results.map((r) => r.ok && r.value.status).sort()).toEqual(['created', 'unchanged']);
    expect(await c.paidOn(claim.id)).toBe(0);
  });
});

describe('settlement and card details', () => {
  it('records the settlement date, and a settlement error as outcome error', async () => {
    const { claim } = await owing(100);
    const traceId = trace();
    const r = await applyPatientPayment(serverRepo(t), {
      source: 'test', billId: claim.billId, amount: amount(10), paymentTraceId: traceId,
      instrument: { brand: 'Visa', lastFour: '4242', authorizationCode: 'A1B2C3' },
      identifiers: [{ system: 'urn:instamed:payment-plan', value: 'PP-1' }],
    });
    expect(r.ok).toBe(true);
    expect(await recordSettlement(serverRepo(t), { source: 'test', originalTraceId: traceId, settlementDate: '2026-12-01' })).toMatchObject({ ok: true, value: { status: 'updated' } });
    let pr = await prByTrace(traceId);
    expect(pr.extension?.find((e) => e.url === SETTLEMENT_EXT)?.valueDate).toBe('2026-12-01');
    expect(pr.extension?.find((e) => e.url === LAST_FOUR_EXT)?.valueString).toBe('4242');
    expect(pr.identifier).toContainEqual({ system: 'urn:instamed:payment-plan', value: 'PP-1' });
    expect(await recordSettlement(serverRepo(t), { source: 'test', originalTraceId: traceId, settlementDate: '2026-12-01' })).toMatchObject({ ok: true, value: { status: 'unchanged' } });
    await recordSettlement(serverRepo(t), { source: 'test', originalTraceId: traceId, settlementDate: '2026-12-02', failed: true });
    pr = await prByTrace(traceId);
    expect(pr.outcome).toBe('error');
    expect(await recordSettlement(serverRepo(t), { source: 'test', originalTraceId: trace(), settlementDate: '2026-12-01' })).toMatchObject({ ok: false, code: 'not-found' });
  });

  it('never keeps a full card number', async () => {
    const { claim } = await owing(100);
    const repo = serverRepo(t);
    const base = { source: 'test', billId: claim.billId, amount: amount(10), paymentTraceId: trace() };
    expect(await applyPatientPayment(repo, { ...base, instrument: { lastFour: '4111111111111111' } })).toMatchObject({ ok: false, code: 'invalid', field: 'instrument.lastFour' });
    expect(await applyPatientPayment(repo, { ...base, instrument: { brand: '4111 1111 1111 1111' } })).toMatchObject({ ok: false, code: 'invalid', field: 'instrument.brand' });
    expect(await c.paidOn(claim.id)).toBeUndefined();
  });
});
