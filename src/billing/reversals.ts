import { randomUUID } from 'node:crypto';
import type { PaymentReconciliation } from '@medplum/fhirtypes';
import type { PostgresRepository } from '../fhir/repository.ts';
import { giveBackPayment, saveCredit } from './books.ts';
import { currencyOf } from './currency.ts';
import { ZERO, fixed, formatMoney } from './money.ts';
import type { Amount } from './money.ts';
import { rewriteReconciliation } from './records.ts';
import { reversalReconciliation } from './resources.ts';
import { refuse } from './result.ts';
import type { BillingResult, Refusal } from './result.ts';
import { findPayment, lockAccount, lockPaymentKey, savePayment } from './store.ts';
import type { PaymentIdentifier, PaymentRow } from './store.ts';
import { appliedReversalsOf, findReversal, findUnmatchedByKey, saveReversal, waitingReversals } from './suspense-store.ts';
import type { ReversalKind, ReversalRow } from './suspense-store.ts';

/**
 * Reversals of a patient payment, the processor's way: a void (same transaction id) cancels the
 * payment; a refund, return or chargeback (a new id naming the original) gives back part or all
 * of it. Money comes back through books.giveBackPayment; one payment is never reversed beyond its
 * amount. A reversal whose original is not recorded yet waits (payment_reversal, status waiting)
 * and applyPatientPayment applies it, in the same transaction, when the original arrives.
 *
 * A void is the last word on its payment, even after a refund of part of it (a processor refunds
 * only settled payments and voids only unsettled ones, so the two arrive together only out of
 * order, or in error): the payment nets to zero. The void gives back what the refunds left, and
 * the refunds' PaymentReconciliations are cancelled with the original's, so the live ones still
 * add up to what the claims and credits hold.
 */

export interface ReversalInput {
  /** Which sender it came from (`instamed`). */
  source: string;
  kind: ReversalKind;
  /** The original payment's trace id (its paymentTraceId). */
  originalTraceId: string;
  /** The reversal's own transaction id; absent for a void (the original's id). Required otherwise. */
  reversalTraceId?: string;
  /** Positive, rounded to the currency's minor unit; absent: all that remains of the original. */
  amount?: Amount;
  /** The currency the sender states the amount in; absent: the book currency. Another is refused. */
  currency?: string;
  /** YYYY-MM-DD; absent: today (UTC). */
  date?: string;
  /** The processor's identifiers of the reversal, on its PaymentReconciliation. */
  identifiers?: PaymentIdentifier[];
}

export interface ReversalOutcome {
  /** created: applied now; unchanged: the same reversal again, nothing moved; waiting: its original is not here yet. */
  status: 'created' | 'unchanged' | 'waiting';
  reversalId: string;
  kind: ReversalKind;
  /** What it gave back (zero while waiting). */
  amount: Amount;
  /** Of which from the claim's paid total, and from the payment's PatientCredit (balance, then allocations). */
  fromClaim: Amount;
  fromCredit: Amount;
  paymentId?: string;
  claimId?: string;
  claimLifecycleId?: string;
  /** What is left of the original payment after it. */
  remaining?: Amount;
  /** A refund's, return's or chargeback's own PaymentReconciliation; a void's: the cancelled original. */
  paymentReconciliationId?: string;
}

export async function reversePayment(repo: PostgresRepository, input: ReversalInput): Promise<BillingResult<ReversalOutcome>> {
  if (input.amount !== undefined && !input.amount.gt(ZERO)) return refuse('invalid', 'A reversal amount must be positive', 'amount');
  if (input.kind === 'void' && input.reversalTraceId !== undefined && input.reversalTraceId !== input.originalTraceId) {
    return refuse('invalid', 'A void carries the original transaction id, not a new one', 'reversalTraceId');
  }
  if (input.kind !== 'void' && !input.reversalTraceId) return refuse('invalid', `A ${input.kind} needs its own transaction id`, 'reversalTraceId');
  const reversalTraceId = input.reversalTraceId ?? input.originalTraceId;
  return repo.withTransaction(async (tx) => {
    const tenantId = tx.context.tenantId;
    const currency = await currencyOf(tx, input.currency, 'amount');
    if (!currency.ok) return currency;
    const originalKey = `trace:${input.originalTraceId}`;
    await lockPaymentKey(tx.conn, tenantId, originalKey);
    const reversalKey = `${input.kind}:${reversalTraceId}`;
    const existing = await findReversal(tx.conn, tenantId, reversalKey);
    if (existing) return again(existing, input, currency.value);

    const row: ReversalRow = {
      id: randomUUID(),
      reversalKey,
      source: input.source,
      kind: input.kind,
      originalKey,
      reversalTraceId,
      requestedAmount: input.amount ?? null,
      amount: ZERO,
      fromBalance: ZERO,
      fromApplied: ZERO,
      fromAllocations: ZERO,
      status: 'waiting',
      refusal: null,
      paymentId: null,
      reversalDate: input.date ?? new Date().toISOString().slice(0, 10),
      paymentReconciliationId: null,
      identifiers: input.identifiers ?? null,
    };
    const payment = await findPayment(tx.conn, tenantId, originalKey);
    if (!payment) {
      // Held unmatched and then discarded: that payment will never be recorded, so nothing would end the wait.
      const held = await findUnmatchedByKey(tx.conn, tenantId, originalKey);
      if (held?.status === 'discarded') return refuse('invalid', discardedOriginal(input.kind, input.originalTraceId, held.reason), 'originalTraceId');
      await saveReversal(tx.conn, tenantId, row);
      return { ok: true, value: waitingOutcome(row) };
    }
    await lockAccount(tx.conn, tenantId, payment.patientRef);
    const result = await applyReversal(tx, row, payment);
    if (!result.ok) return result; // refused before anything moved; the caller journals it
    return { ok: true, value: result.value };
  });
}

/** Applies the reversals that waited for the payment with identity `key` (just recorded, account locked). */
export async function applyWaitingReversals(repo: PostgresRepository, key: string): Promise<void> {
  const tenantId = repo.context.tenantId;
  for (const waiting of await waitingReversals(repo.conn, tenantId, key)) {
    const payment = (await findPayment(repo.conn, tenantId, key))!;
    const result = await applyReversal(repo, waiting, payment);
    if (!result.ok) await saveReversal(repo.conn, tenantId, { ...waiting, status: 'refused', refusal: result.message });
  }
}

/**
 * The reversals that waited for a held payment an operator discarded: refused (moving nothing),
 * since the payment they reverse will never be recorded.
 */
export async function refuseWaitingReversals(repo: PostgresRepository, key: string, traceId: string, reason: string): Promise<number> {
  const waiting = await waitingReversals(repo.conn, repo.context.tenantId, key);
  for (const r of waiting) await saveReversal(repo.conn, repo.context.tenantId, { ...r, status: 'refused', refusal: discardedOriginal(r.kind, traceId, reason) });
  return waiting.length;
}

function discardedOriginal(kind: ReversalKind, traceId: string, reason: string | null): string {
  return `Payment ${traceId} was held unmatched and then discarded${reason ? ` (${reason})` : ''}: there is nothing to ${kind}`;
}

/** The same reversal identity again: the same request is unchanged (or still waiting); another amount conflicts. */
function again(existing: ReversalRow, input: ReversalInput, currency: string): BillingResult<ReversalOutcome> {
  if (existing.originalKey !== `trace:${input.originalTraceId}`) {
    return refuse('conflict', `${existing.kind} ${existing.reversalTraceId} was already recorded for another payment`, 'reversalTraceId');
  }
  const asked = input.amount ?? null;
  const same = asked === null ? existing.requestedAmount === null || existing.kind === 'void' : existing.requestedAmount?.eq(asked) || (existing.requestedAmount === null && existing.amount.eq(asked));
  if (!same) {
    return refuse('conflict', `${existing.kind} ${existing.reversalTraceId} was already recorded for ${formatMoney(existing.requestedAmount ?? existing.amount, currency)}`, 'amount');
  }
  if (existing.status === 'waiting') return { ok: true, value: waitingOutcome(existing) };
  if (existing.status === 'refused') return refuse('invalid', existing.refusal ?? 'This reversal was refused', 'amount');
  return { ok: true, value: appliedOutcome('unchanged', existing) };
}

/** Decides and moves one reversal of `payment` (under its key and account locks). */
async function applyReversal(repo: PostgresRepository, r: ReversalRow, payment: PaymentRow): Promise<BillingResult<ReversalOutcome>> {
  const tenantId = repo.context.tenantId;
  const remaining = payment.amount.minus(payment.reversedAmount);
  const refusal = checkAmount(r, payment, remaining);
  if (refusal) return refusal;
  const value = r.kind === 'void' ? remaining : (r.requestedAmount ?? remaining);
  const given = await giveBackPayment(repo, payment, r.id, value);

  const updated: PaymentRow = { ...payment, reversedAmount: payment.reversedAmount.plus(value), ...(r.kind === 'void' && { status: 'cancelled' as const }) };
  await savePayment(repo.conn, tenantId, updated);
  await rewriteReconciliation(repo, updated);
  if (payment.patientCreditId && given.fromBalance.plus(given.fromAllocations).gt(ZERO)) await saveCredit(repo, payment.patientCreditId, payment.currency);

  const applied: ReversalRow = { ...r, status: 'applied', amount: value, ...given, paymentId: payment.id, paymentReconciliationId: payment.paymentReconciliationId };
  if (r.kind === 'void') await cancelEarlierReversals(repo, payment.id);
  else {
    applied.paymentReconciliationId = randomUUID();
    await repo.createResource<PaymentReconciliation>(
      reversalReconciliation({
        id: applied.paymentReconciliationId,
        created: new Date().toISOString(),
        kind: r.kind,
        date: r.reversalDate,
        amount: value,
        currency: payment.currency,
        fromClaim: given.fromApplied,
        fromCredit: given.fromBalance.plus(given.fromAllocations),
        reversalTraceId: r.reversalTraceId,
        identifiers: r.identifiers,
        originalTraceId: payment.paymentTraceId ?? r.originalKey.slice('trace:'.length),
        originalReconciliationId: payment.paymentReconciliationId,
        claimId: payment.claimId,
        patientCreditId: payment.patientCreditId,
        patient: { reference: payment.patientRef },
      }),
      { assignedId: true },
    );
  }
  await saveReversal(repo.conn, tenantId, applied);
  return { ok: true, value: { ...appliedOutcome('created', applied), claimId: payment.claimId, claimLifecycleId: payment.lifecycleId, remaining: remaining.minus(value) } };
}

/** A void's partner: the refunds, returns and chargebacks of its payment are cancelled with it. */
async function cancelEarlierReversals(repo: PostgresRepository, paymentId: string): Promise<void> {
  for (const earlier of await appliedReversalsOf(repo.conn, repo.context.tenantId, paymentId)) {
    if (earlier.kind === 'void' || !earlier.paymentReconciliationId) continue;
    const pr = await repo.readResource<PaymentReconciliation>('PaymentReconciliation', earlier.paymentReconciliationId);
    if (pr.status !== 'cancelled') await repo.updateResource<PaymentReconciliation>({ ...pr, status: 'cancelled' });
  }
}

function checkAmount(r: ReversalRow, payment: PaymentRow, remaining: Amount): Refusal | undefined {
  const name = payment.paymentTraceId ?? payment.id;
  if (payment.status === 'cancelled') return refuse('invalid', `Payment ${name} was voided; nothing is left to ${r.kind}`, 'originalTraceId');
  if (remaining.isZero()) return refuse('invalid', `Payment ${name} was reversed in full; nothing is left to ${r.kind}`, 'originalTraceId');
  if (r.requestedAmount?.gt(remaining)) {
    const c = payment.currency;
    const done = payment.reversedAmount.gt(ZERO) ? ` (${fixed(payment.reversedAmount, c)} of its ${fixed(payment.amount, c)} already reversed)` : '';
    return refuse('invalid', `A ${r.kind} of ${formatMoney(r.requestedAmount, c)} exceeds the ${formatMoney(remaining, c)} left of payment ${name}${done}`, 'amount');
  }
  return undefined;
}

function waitingOutcome(r: ReversalRow): ReversalOutcome {
  return { status: 'waiting', reversalId: r.id, kind: r.kind, amount: ZERO, fromClaim: ZERO, fromCredit: ZERO };
}

function appliedOutcome(status: 'created' | 'unchanged', r: ReversalRow): ReversalOutcome {
  return {
    status,
    reversalId: r.id,
    kind: r.kind,
    amount: r.amount,
    fromClaim: r.fromApplied,
    fromCredit: r.fromBalance.plus(r.fromAllocations),
    ...(r.paymentId && { paymentId: r.paymentId }),
    ...(r.paymentReconciliationId && { paymentReconciliationId: r.paymentReconciliationId }),
  };
}
