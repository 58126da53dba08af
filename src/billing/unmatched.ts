import type { Queryable } from '../db/index.ts';
import type { PostgresRepository } from '../fhir/repository.ts';
import { amount } from './money.ts';
import type { Amount } from './money.ts';
import { applyPatientPayment } from './payments.ts';
import type { AppliedPaymentOutcome, PatientPaymentInput } from './payments.ts';
import { refuse } from './result.ts';
import { refuseWaitingReversals } from './reversals.ts';
import type { BillingResult } from './result.ts';
import { lockPaymentKey } from './store.ts';
import { listWaitingUnmatched, lockUnmatched, resolveUnmatched, unmatchedKey, unmatchedTenants } from './suspense-store.ts';
import type { HoldMode, UnmatchedRow } from './suspense-store.ts';

/**
 * Unmatched payments (suspense): what applyPatientPayment kept because no claim had its bill id.
 * A `hold` payment applies by itself when its Claim is written (observer.ts); any waiting one can
 * be applied by an operator once its claim exists, or discarded with a reason. Each is applied at
 * most once: its row is locked, and its status changes in the payment's own transaction.
 */

export interface UnmatchedPaymentView {
  id: string;
  tenant: string;
  source: string;
  billId: string;
  mode: HoldMode;
  amount: Amount;
  paymentTraceId?: string;
  paymentDate?: string;
  receivedAt: string;
  /** Seconds it has waited. */
  ageSeconds: number;
}

/** What waits, oldest first; without a tenant: every tenant's (the admin API is an operator's). */
export async function listUnmatchedPayments(conn: Queryable, filter: { tenantId?: string; source?: string } = {}): Promise<UnmatchedPaymentView[]> {
  return (await listWaitingUnmatched(conn, filter)).map((u) => ({
    id: u.id,
    tenant: u.tenantId,
    source: u.source,
    billId: u.billId,
    mode: u.mode,
    amount: u.amount,
    ...(typeof u.input.paymentTraceId === 'string' && { paymentTraceId: u.input.paymentTraceId }),
    ...(typeof u.input.paymentDate === 'string' && { paymentDate: u.input.paymentDate }),
    receivedAt: u.receivedAt,
    ageSeconds: u.ageSeconds,
  }));
}

/** The tenant an unmatched payment belongs to, for the operator's routes (which name only its id). */
export async function unmatchedPaymentTenant(conn: Queryable, id: string): Promise<string | undefined> {
  const tenants = await unmatchedTenants(conn, id);
  return tenants.length === 1 ? tenants[0] : undefined;
}

export type AppliedUnmatchedOutcome = AppliedPaymentOutcome & { unmatchedPaymentId: string };

/**
 * Applies a waiting payment to the claim that now has its bill id, as applyPatientPayment would
 * have on arrival (the date it was received, when it carried none). Refused: unknown id
 * (not-found), already applied or discarded (conflict), still no such claim (not-found).
 * `onlyMode`: apply only a payment held in that mode (the automatic re-match passes `hold`).
 */
export async function applyUnmatchedPayment(repo: PostgresRepository, id: string, options: { onlyMode?: HoldMode } = {}): Promise<BillingResult<AppliedUnmatchedOutcome>> {
  return repo.withTransaction(async (tx) => {
    const row = await lockInOrder(tx, id);
    if (!row) return refuse('not-found', `Unmatched payment ${id} not found`);
    if (row.status !== 'waiting') return refuse('conflict', `Unmatched payment ${id} was already ${row.status}`);
    if (options.onlyMode && row.mode !== options.onlyMode) return refuse('conflict', `Unmatched payment ${id} waits for an operator`);
    const result = await applyPatientPayment(tx, { ...storedCommand(row), whenClaimUnknown: 'refuse' });
    if (!result.ok) return result;
    if (result.value.status === 'unmatched') throw new Error('a payment applied with whenClaimUnknown refuse is never held');
    await resolveUnmatched(tx.conn, tx.context.tenantId, id, { status: 'applied', paymentId: result.value.paymentId });
    return { ok: true, value: { ...result.value, unmatchedPaymentId: id } };
  });
}

/** Discards a waiting payment (the money is handled elsewhere, e.g. refunded by the processor). */
export async function discardUnmatchedPayment(repo: PostgresRepository, id: string, reason: string): Promise<BillingResult<{ unmatchedPaymentId: string; reason: string }>> {
  const why = reason.trim();
  if (why === '' || why.length > 1000) return refuse('invalid', 'A reason (1 to 1000 characters) is required to discard a payment', 'reason');
  return repo.withTransaction(async (tx) => {
    const row = await lockInOrder(tx, id);
    if (!row) return refuse('not-found', `Unmatched payment ${id} not found`);
    if (row.status !== 'waiting') return refuse('conflict', `Unmatched payment ${id} was already ${row.status}`);
    await resolveUnmatched(tx.conn, tx.context.tenantId, id, { status: 'discarded', reason: why });
    const traceId = typeof row.input.paymentTraceId === 'string' ? row.input.paymentTraceId : row.id;
    await refuseWaitingReversals(tx, row.paymentKey, traceId, why);
    return { ok: true, value: { unmatchedPaymentId: id, reason: why } };
  });
}

/** The payment key lock first, then the row (the order applyPatientPayment takes them in). */
async function lockInOrder(tx: PostgresRepository, id: string): Promise<UnmatchedRow | undefined> {
  const tenantId = tx.context.tenantId;
  const key = await unmatchedKey(tx.conn, tenantId, id);
  if (key === undefined) return undefined;
  await lockPaymentKey(tx.conn, tenantId, key);
  return lockUnmatched(tx.conn, tenantId, id);
}

function storedCommand(row: UnmatchedRow): PatientPaymentInput {
  const i = row.input as Omit<PatientPaymentInput, 'amount'> & { amount: string };
  return { ...i, amount: amount(i.amount) };
}
