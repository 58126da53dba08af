import { randomUUID } from 'node:crypto';
import type { Claim, PaymentReconciliation } from '@medplum/fhirtypes';
import type { PostgresRepository } from '../fhir/repository.ts';
import { account, changeLifecyclePaid, saveCredit, takeBackFromCredit } from './books.ts';
import { findClaimsByBillId, lifecycleClaims, lifecycleIdOf, patientRefOf, responsibilityOf } from './claims.ts';
import { CURRENCY, ZERO, max, min } from './money.ts';
import type { Amount } from './money.ts';
import { paymentReconciliation } from './resources.ts';
import { BillingFailure, refuse } from './result.ts';
import type { BillingResult } from './result.ts';
import { claimIdSystem, findPayment, lockAccount, lockLifecycle, recordMovement, savePayment } from './store.ts';
import type { PaymentRow } from './store.ts';

/** A patient payment, as any sender's webhook maps it. */
export interface PatientPaymentInput {
  /** Which sender it came from (`cair`). */
  source: string;
  /** The claim's id at the sender: Claim.identifier value in the tenant's claim-id system. */
  billId: string;
  /** Positive, already rounded to cents (money.amount). */
  amount: Amount;
  /** YYYY-MM-DD; absent: today (UTC) for a new payment, unchanged for a resend. */
  paymentDate?: string;
  /** Absent: none for a new payment, unchanged for a resend. */
  paymentMethod?: string;
  /** The processor's payment id: the payment's identity when given. */
  paymentTraceId?: string;
}

export interface PatientPaymentOutcome {
  /** created: new payment; unchanged: the same payment again, nothing moved; updated: a resend that changed it. */
  status: 'created' | 'unchanged' | 'updated';
  paymentId: string;
  claimId: string;
  claimLifecycleId: string;
  /** What this payment has applied to the claim's lifecycle, in total. */
  amountSetOnClaim: Amount;
  /** What this payment holds as a PatientCredit (zero when none). */
  excessAmount: Amount;
  paymentReconciliationId: string;
  patientCreditId?: string;
}

/**
 * The payment's identity: its trace id when it has one; otherwise bill, amount, date and method,
 * so the same payment sent twice without a trace id is still recognised.
 */
export function paymentKey(input: PatientPaymentInput): string {
  if (input.paymentTraceId !== undefined) return `trace:${input.paymentTraceId}`;
  return `bill:${JSON.stringify([input.billId, input.amount.toFixed(2), input.paymentDate ?? today(), input.paymentMethod ?? null])}`;
}

/** Today's date in UTC, as an R4 `date`. */
export function today(): string {
  return new Date().toISOString().slice(0, 10);
}

/**
 * Records a patient payment against the claim with the sender's bill id, all in one transaction
 * (joining the caller's, if any):
 * - the patient's account is locked, so payments, resends and allocations of one patient serialize;
 * - the payment applies up to the lifecycle's open responsibility (responsibility − patientPaidAmount),
 *   the rest becomes a PatientCredit;
 * - ledger rows, PatientPaymentDetails, patientPaidAmount on every claim of the lifecycle, one
 *   PaymentReconciliation and the PatientCredit are written through the repository.
 * The same payment again (same identity, same amount) returns the recorded result and moves nothing;
 * a resend with a changed amount applies or gives back only the difference.
 * `repo` carries the caller's tenant and the server's access (FULL_ACCESS).
 */
export async function applyPatientPayment(repo: PostgresRepository, input: PatientPaymentInput): Promise<BillingResult<PatientPaymentOutcome>> {
  if (!input.amount.gt(ZERO)) throw new RangeError('A payment amount must be positive');
  return repo.withTransaction(async (tx) => {
    const tenantId = tx.context.tenantId;
    const system = await claimIdSystem(tx.conn, tenantId);
    const found = await findClaimsByBillId(tx, system, input.billId);
    if (found.length === 0) return refuse('not-found', `Claim not found for billId: ${input.billId}`, 'billId');
    const lifecycles = [...new Set(found.map(lifecycleIdOf))];
    if (lifecycles.length > 1) {
      throw new BillingFailure(`billId ${input.billId} matches claims of ${lifecycles.length} lifecycles (${lifecycles.join(', ')})`);
    }
    const patientRef = patientRefOf(found[0]);
    await lockAccount(tx.conn, tenantId, patientRef);
    // Read again under the lock: what we act on is what the lock protects.
    const claim = await tx.readResource<Claim>('Claim', found[0].id!);
    if (patientRefOf(claim) !== patientRef || lifecycleIdOf(claim) !== lifecycles[0]) {
      throw new BillingFailure(`Claim/${claim.id} changed while the payment was processed; send it again`);
    }

    const key = paymentKey(input);
    const existing = await findPayment(tx.conn, tenantId, key);
    if (!existing) return { ok: true, value: await createPayment(tx, claim, patientRef, key, input) };
    if (existing.billId !== input.billId) {
      return refuse('conflict', `paymentTraceId ${input.paymentTraceId} was already used for billId ${existing.billId}`, 'paymentTraceId');
    }
    if (existing.patientRef !== patientRef) {
      throw new BillingFailure(`Claim/${claim.id} now names ${patientRef}; payment ${existing.id} was made by ${existing.patientRef}`);
    }
    return { ok: true, value: await updatePayment(tx, existing, input) };
  });
}

async function createPayment(
  repo: PostgresRepository,
  claim: Claim,
  patientRef: string,
  key: string,
  input: PatientPaymentInput,
): Promise<PatientPaymentOutcome> {
  const tenantId = repo.context.tenantId;
  const lifecycleId = lifecycleIdOf(claim);
  const paid = await lockLifecycle(repo.conn, tenantId, lifecycleId);
  const responsibility = await responsibilityOf(repo, await lifecycleClaims(repo, lifecycleId));
  const open = max(ZERO, responsibility.amount.minus(paid));
  const applied = min(input.amount, open);
  const credited = input.amount.minus(applied);

  const row: PaymentRow = {
    id: randomUUID(),
    paymentKey: key,
    source: input.source,
    billId: input.billId,
    paymentTraceId: input.paymentTraceId ?? null,
    claimId: claim.id!,
    lifecycleId,
    patientRef,
    amount: input.amount,
    appliedAmount: applied,
    creditedAmount: credited,
    currency: CURRENCY,
    paymentDate: input.paymentDate ?? today(),
    paymentMethod: input.paymentMethod ?? null,
    claimResponseId: responsibility.claimResponse?.id ?? null,
    paymentReconciliationId: randomUUID(),
    patientCreditId: credited.gt(ZERO) ? randomUUID() : null,
  };
  await savePayment(repo.conn, tenantId, row);

  const common = { currency: CURRENCY, paymentId: row.id };
  await recordMovement(repo.conn, tenantId, { ...common, kind: 'payment.received', from: account.payer(patientRef), to: account.payment(row.id), amount: input.amount });
  await recordMovement(repo.conn, tenantId, { ...common, kind: 'payment.applied', from: account.payment(row.id), to: account.lifecycle(lifecycleId), amount: applied, claimId: row.claimId });
  if (row.patientCreditId) {
    await recordMovement(repo.conn, tenantId, { ...common, kind: 'payment.credited', from: account.payment(row.id), to: account.credit(row.patientCreditId), amount: credited, creditId: row.patientCreditId });
  }
  await changeLifecyclePaid(repo, lifecycleId, applied);

  const created = new Date().toISOString();
  await repo.createResource<PaymentReconciliation>(reconciliation(row, created), { assignedId: true });
  if (row.patientCreditId) {
    await saveCredit(repo, row.patientCreditId, { create: { patient: { reference: patientRef }, paymentReconciliationId: row.paymentReconciliationId, created } });
  }
  return outcome('created', row);
}

/** The same payment again: nothing, a new date or method, or a changed amount (the difference moves). */
async function updatePayment(repo: PostgresRepository, existing: PaymentRow, input: PatientPaymentInput): Promise<PatientPaymentOutcome> {
  const tenantId = repo.context.tenantId;
  const paymentDate = input.paymentDate ?? existing.paymentDate;
  const paymentMethod = input.paymentMethod ?? existing.paymentMethod;
  const sameDetails = existing.paymentDate === paymentDate && existing.paymentMethod === paymentMethod;
  if (existing.amount.eq(input.amount) && sameDetails) return outcome('unchanged', existing);

  const paid = await lockLifecycle(repo.conn, tenantId, existing.lifecycleId);
  const row: PaymentRow = { ...existing, amount: input.amount, paymentDate, paymentMethod };
  const common = { currency: CURRENCY, paymentId: row.id };
  const delta = input.amount.minus(existing.amount);

  if (delta.gt(ZERO)) {
    // More money: the difference applies like a new payment would, the rest is credited.
    const responsibility = await responsibilityOf(repo, await lifecycleClaims(repo, row.lifecycleId));
    const add = min(delta, max(ZERO, responsibility.amount.minus(paid)));
    const extra = delta.minus(add);
    row.appliedAmount = row.appliedAmount.plus(add);
    row.creditedAmount = row.creditedAmount.plus(extra);
    if (add.gt(ZERO)) row.claimResponseId = responsibility.claimResponse?.id ?? row.claimResponseId;
    if (extra.gt(ZERO) && !row.patientCreditId) row.patientCreditId = randomUUID();
    await recordMovement(repo.conn, tenantId, { ...common, kind: 'payment.received', from: account.payer(row.patientRef), to: account.payment(row.id), amount: delta });
    await recordMovement(repo.conn, tenantId, { ...common, kind: 'payment.applied', from: account.payment(row.id), to: account.lifecycle(row.lifecycleId), amount: add, claimId: row.claimId });
    if (extra.gt(ZERO)) {
      await recordMovement(repo.conn, tenantId, { ...common, kind: 'payment.credited', from: account.payment(row.id), to: account.credit(row.patientCreditId!), amount: extra, creditId: row.patientCreditId! });
    }
    await changeLifecyclePaid(repo, row.lifecycleId, add);
  } else if (delta.lt(ZERO)) {
    // Less money: give the difference back, last in first out: the credit (its balance, then its
    // allocations), then what was applied to the claim.
    let back = delta.negated();
    if (row.patientCreditId) {
      const fromCredit = await takeBackFromCredit(repo, row.patientCreditId, row.id, min(back, row.creditedAmount));
      row.creditedAmount = row.creditedAmount.minus(fromCredit);
      back = back.minus(fromCredit);
    }
    const fromApplied = min(back, row.appliedAmount);
    await recordMovement(repo.conn, tenantId, { ...common, kind: 'applied.reversed', from: account.lifecycle(row.lifecycleId), to: account.payment(row.id), amount: fromApplied, claimId: row.claimId });
    row.appliedAmount = row.appliedAmount.minus(fromApplied);
    back = back.minus(fromApplied);
    if (!back.isZero()) throw new Error(`Payment ${row.id}: ${back.toFixed(2)} could not be given back`);
    await recordMovement(repo.conn, tenantId, { ...common, kind: 'payment.reduced', from: account.payment(row.id), to: account.payer(row.patientRef), amount: delta.negated() });
    await changeLifecyclePaid(repo, row.lifecycleId, fromApplied.negated());
  }
  await savePayment(repo.conn, tenantId, row);

  const current = await repo.readResource<PaymentReconciliation>('PaymentReconciliation', row.paymentReconciliationId);
  await repo.updateResource<PaymentReconciliation>({ ...reconciliation(row, current.created), meta: current.meta });
  if (row.patientCreditId) {
    const exists = existing.patientCreditId !== null;
    await saveCredit(repo, row.patientCreditId, exists ? {} : { create: { patient: { reference: row.patientRef }, paymentReconciliationId: row.paymentReconciliationId, created: new Date().toISOString() } });
  }
  return outcome('updated', row);
}

function reconciliation(row: PaymentRow, created: string): PaymentReconciliation {
  return paymentReconciliation({
    id: row.paymentReconciliationId,
    created,
    paymentDate: row.paymentDate,
    amount: row.amount,
    applied: row.appliedAmount,
    credited: row.creditedAmount,
    method: row.paymentMethod,
    traceId: row.paymentTraceId,
    claimId: row.claimId,
    claimResponseId: row.claimResponseId,
    patient: { reference: row.patientRef },
    lifecycleId: row.lifecycleId,
  });
}

function outcome(status: PatientPaymentOutcome['status'], row: PaymentRow): PatientPaymentOutcome {
  return {
    status,
    paymentId: row.id,
    claimId: row.claimId,
    claimLifecycleId: row.lifecycleId,
    amountSetOnClaim: row.appliedAmount,
    excessAmount: row.creditedAmount,
    paymentReconciliationId: row.paymentReconciliationId,
    ...(row.patientCreditId && { patientCreditId: row.patientCreditId }),
  };
}
