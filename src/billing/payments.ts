import { randomUUID } from 'node:crypto';
import type { Claim } from '@medplum/fhirtypes';
import type { PostgresRepository } from '../fhir/repository.ts';
import { receivePayment, reducePayment, saveCredit } from './books.ts';
import { findClaimsByBillId, lifecycleClaims, lifecycleIdOf, patientRefOf, responsibilityOf } from './claims.ts';
import { currencyOf } from './currency.ts';
import { ZERO, formatMoney, max, min } from './money.ts';
import type { Amount } from './money.ts';
import { holdPayment, sameJson, settleHeld } from './hold.ts';
import type { UnmatchedPaymentOutcome } from './hold.ts';
import { createReconciliation, rewriteReconciliation } from './records.ts';
import { BillingFailure, refuse } from './result.ts';
import type { BillingResult, Refusal } from './result.ts';
import { applyWaitingReversals } from './reversals.ts';
import { claimIdSystem, findPayment, lockAccount, lockLifecycle, lockPaymentKey, savePayment } from './store.ts';
import type { PaymentIdentifier, PaymentInstrument, PaymentRow } from './store.ts';
import type { HoldMode } from './suspense-store.ts';

/** A patient payment, as any sender's webhook maps it. */
export interface PatientPaymentInput {
  /** Which sender it came from (`cair`). */
  source: string;
  /** The claim's id at the sender: Claim.identifier value in `claimIdSystem`. */
  billId: string;
  /** The Claim.identifier system of billId (a webhook source's option); absent: the tenant's claim-id system. */
  claimIdSystem?: string;
  /** Positive, already rounded to the currency's minor unit (money.amount). */
  amount: Amount;
  /**
   * The currency the sender states the amount in (USD for the senders that are USD by contract);
   * absent: the tenant's book currency. Another than the book currency is refused (invalid).
   */
  currency?: string;
  /** YYYY-MM-DD; absent: today (UTC) for a new payment, unchanged for a resend. */
  paymentDate?: string;
  /** Absent: none for a new payment, unchanged for a resend. */
  paymentMethod?: string;
  /** The processor's payment id: the payment's identity when given. */
  paymentTraceId?: string;
  /**
   * No claim with this bill id: refuse (the default: refusal not-found, nothing stored); hold (kept
   * as an unmatched payment that applies by itself, once, when such a Claim is written by anyone);
   * hold-for-operator (kept, applied only by an operator: applyUnmatchedPayment).
   */
  whenClaimUnknown?: 'refuse' | HoldMode;
  /** The card as the processor describes it, shown on the PaymentReconciliation. lastFour: exactly 4 digits. */
  instrument?: PaymentInstrument;
  /** The processor's identifiers, on PaymentReconciliation.identifier (the trace id is always there). */
  identifiers?: PaymentIdentifier[];
}

export type PatientPaymentOutcome = AppliedPaymentOutcome | UnmatchedPaymentOutcome;
export type { UnmatchedPaymentOutcome };

export interface AppliedPaymentOutcome {
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
  const bad = checkDetails(input);
  if (bad) return bad;
  return repo.withTransaction(async (tx) => {
    const tenantId = tx.context.tenantId;
    const currency = await currencyOf(tx, input.currency, 'amount');
    if (!currency.ok) return currency;
    const key = paymentKey(input);
    await lockPaymentKey(tx.conn, tenantId, key);
    const system = input.claimIdSystem ?? (await claimIdSystem(tx.conn, tenantId));
    const found = await findClaimsByBillId(tx, system, input.billId);
    if (found.length === 0) {
      // The identity is taken by a payment already recorded (for another bill, or for a claim since
      // removed): never hold a second copy of it beside the first.
      const recorded = await findPayment(tx.conn, tenantId, key);
      if (recorded) return refuse('conflict', `paymentTraceId ${input.paymentTraceId} was already used for billId ${recorded.billId}`, 'paymentTraceId');
      const mode = input.whenClaimUnknown ?? 'refuse';
      if (mode === 'refuse') return refuse('not-found', `Claim not found for billId: ${input.billId}`, 'billId');
      return { ok: true, value: await holdPayment(tx, key, { ...input, paymentDate: input.paymentDate ?? today() }, mode) };
    }
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

    const existing = await findPayment(tx.conn, tenantId, key);
    if (!existing) {
      const created = await createPayment(tx, claim, patientRef, key, input, currency.value);
      // The same payment held earlier (its claim was not here then) is this one now.
      await settleHeld(tx, key, created.paymentId);
      // Reversals that arrived before their original apply now, in the order they came.
      await applyWaitingReversals(tx, key);
      return { ok: true, value: created };
    }
    if (existing.billId !== input.billId) {
      return refuse('conflict', `paymentTraceId ${input.paymentTraceId} was already used for billId ${existing.billId}`, 'paymentTraceId');
    }
    if (existing.patientRef !== patientRef) {
      throw new BillingFailure(`Claim/${claim.id} now names ${patientRef}; payment ${existing.id} was made by ${existing.patientRef}`);
    }
    return updatePayment(tx, existing, input);
  });
}

/** Card details and identifiers: never a full card number, never an empty identifier. */
function checkDetails(input: PatientPaymentInput): Refusal | undefined {
  const i = input.instrument;
  if (i?.lastFour !== undefined && !/^\d{4}$/.test(i.lastFour)) return refuse('invalid', 'instrument.lastFour must be exactly 4 digits', 'instrument.lastFour');
  for (const field of ['brand', 'authorizationCode'] as const) {
    const v = i?.[field];
    if (v === undefined) continue;
    if (v.trim() === '' || v.length > 64) return refuse('invalid', `instrument.${field} must be 1 to 64 characters`, `instrument.${field}`);
    if (/\d{9,}/.test(v.replace(/[\s-]/g, ''))) return refuse('invalid', `instrument.${field} looks like a card number; only the last four digits are kept`, `instrument.${field}`);
  }
  for (const [n, id] of (input.identifiers ?? []).entries()) {
    if (!id.system?.trim() || !id.value?.trim() || id.system.length > 256 || id.value.length > 256) {
      return refuse('invalid', `identifiers[${n}] needs a system and a value (each at most 256 characters)`, `identifiers[${n}]`);
    }
  }
  return undefined;
}

async function createPayment(
  repo: PostgresRepository,
  claim: Claim,
  patientRef: string,
  key: string,
  input: PatientPaymentInput,
  currency: string,
): Promise<AppliedPaymentOutcome> {
  const tenantId = repo.context.tenantId;
  const lifecycleId = lifecycleIdOf(claim);
  const paid = await lockLifecycle(repo.conn, tenantId, lifecycleId, currency);
  const responsibility = await responsibilityOf(repo, await lifecycleClaims(repo, lifecycleId), currency);
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
    currency,
    paymentDate: input.paymentDate ?? today(),
    paymentMethod: input.paymentMethod ?? null,
    claimResponseId: responsibility.claimResponse?.id ?? null,
    paymentReconciliationId: randomUUID(),
    patientCreditId: credited.gt(ZERO) ? randomUUID() : null,
    status: 'active',
    reversedAmount: ZERO,
    settlementDate: null,
    settlementFailed: false,
    instrument: input.instrument ?? null,
    identifiers: input.identifiers ?? null,
  };
  await savePayment(repo.conn, tenantId, row);

  await receivePayment(repo, row, applied, credited);

  await createReconciliation(repo, row);
  if (row.patientCreditId) {
    await saveCredit(repo, row.patientCreditId, currency, { create: { patient: { reference: patientRef }, paymentReconciliationId: row.paymentReconciliationId, created: new Date().toISOString() } });
  }
  return outcome('created', row);
}

/**
 * The same payment again: nothing, new details (date, method, card, identifiers), or a changed
 * amount (the difference moves). A payment already reversed (voided, refunded) takes no changes.
 */
async function updatePayment(repo: PostgresRepository, existing: PaymentRow, input: PatientPaymentInput): Promise<BillingResult<AppliedPaymentOutcome>> {
  const tenantId = repo.context.tenantId;
  const paymentDate = input.paymentDate ?? existing.paymentDate;
  const paymentMethod = input.paymentMethod ?? existing.paymentMethod;
  const instrument = input.instrument ?? existing.instrument;
  const identifiers = input.identifiers ?? existing.identifiers;
  const sameDetails =
    existing.paymentDate === paymentDate &&
    existing.paymentMethod === paymentMethod &&
    sameJson(existing.instrument, instrument) &&
    sameJson(existing.identifiers, identifiers);
  if (existing.amount.eq(input.amount) && sameDetails) return { ok: true, value: outcome('unchanged', existing) };
  if (existing.status === 'cancelled' || existing.reversedAmount.gt(ZERO)) {
    const what = existing.status === 'cancelled' ? 'voided' : `reversed by ${formatMoney(existing.reversedAmount, existing.currency)}`;
    return refuse('conflict', `Payment ${input.paymentTraceId ?? existing.id} was ${what}; a changed resend is refused`, 'paymentTraceId');
  }

  const paid = await lockLifecycle(repo.conn, tenantId, existing.lifecycleId, existing.currency);
  const row: PaymentRow = { ...existing, amount: input.amount, paymentDate, paymentMethod, instrument, identifiers };
  const delta = input.amount.minus(existing.amount);

  if (delta.gt(ZERO)) {
    // More money: the difference applies like a new payment would, the rest is credited.
    const responsibility = await responsibilityOf(repo, await lifecycleClaims(repo, row.lifecycleId), row.currency);
    const add = min(delta, max(ZERO, responsibility.amount.minus(paid)));
    const extra = delta.minus(add);
    row.appliedAmount = row.appliedAmount.plus(add);
    row.creditedAmount = row.creditedAmount.plus(extra);
    if (add.gt(ZERO)) row.claimResponseId = responsibility.claimResponse?.id ?? row.claimResponseId;
    if (extra.gt(ZERO) && !row.patientCreditId) row.patientCreditId = randomUUID();
    await receivePayment(repo, row, add, extra);
  } else if (delta.lt(ZERO)) {
    const back = await reducePayment(repo, existing, delta.negated());
    row.creditedAmount = row.creditedAmount.minus(back.fromCredit);
    row.appliedAmount = row.appliedAmount.minus(back.fromApplied);
  }
  await savePayment(repo.conn, tenantId, row);

  await rewriteReconciliation(repo, row);
  if (row.patientCreditId) {
    const exists = existing.patientCreditId !== null;
    await saveCredit(repo, row.patientCreditId, row.currency, exists ? {} : { create: { patient: { reference: row.patientRef }, paymentReconciliationId: row.paymentReconciliationId, created: new Date().toISOString() } });
  }
  return { ok: true, value: outcome('updated', row) };
}

function outcome(status: AppliedPaymentOutcome['status'], row: PaymentRow): AppliedPaymentOutcome {
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
