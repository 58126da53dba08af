import type { Queryable } from '../db/index.ts';
import { Money2, sql } from './money.ts';
import type { Amount } from './money.ts';
import type { PaymentIdentifier } from './store.ts';

/**
 * SQL of what waits or undoes (migrations/005_billing_reversals.sql): reversals of payments
 * (applied, or waiting for their original) and unmatched payments (held until their claim exists).
 * Callers hold the transaction; every statement is keyed by tenant first.
 */

// ---- reversals ---------------------------------------------------------------------------------

export type ReversalKind = 'void' | 'refund' | 'return' | 'chargeback';

export interface ReversalRow {
  id: string;
  reversalKey: string;
  source: string;
  kind: ReversalKind;
  /** The original payment's identity (`trace:<id>`). */
  originalKey: string;
  reversalTraceId: string;
  /** As asked; null: all that remains of the original. */
  requestedAmount: Amount | null;
  /** What it gave back (once applied). */
  amount: Amount;
  fromBalance: Amount;
  fromApplied: Amount;
  fromAllocations: Amount;
  status: 'waiting' | 'applied' | 'refused';
  refusal: string | null;
  paymentId: string | null;
  /** YYYY-MM-DD */
  reversalDate: string;
  paymentReconciliationId: string | null;
  identifiers: PaymentIdentifier[] | null;
}

const REVERSAL_COLUMNS = `id, reversal_key AS "reversalKey", source, kind, original_key AS "originalKey",
  reversal_trace_id AS "reversalTraceId", requested_amount::text AS "requestedAmount", amount::text AS amount,
  from_balance::text AS "fromBalance", from_applied::text AS "fromApplied", from_allocations::text AS "fromAllocations",
  status, refusal, payment_id AS "paymentId", to_char(reversal_date, 'YYYY-MM-DD') AS "reversalDate",
  payment_reconciliation_id AS "paymentReconciliationId", identifiers`;

type ReversalMoney = 'requestedAmount' | 'amount' | 'fromBalance' | 'fromApplied' | 'fromAllocations';
type RawReversal = Omit<ReversalRow, ReversalMoney> & Record<ReversalMoney, string> & { requestedAmount: string | null };

function toReversal(r: RawReversal): ReversalRow {
  return {
    ...r,
    requestedAmount: r.requestedAmount === null ? null : new Money2(r.requestedAmount),
    amount: new Money2(r.amount),
    fromBalance: new Money2(r.fromBalance),
    fromApplied: new Money2(r.fromApplied),
    fromAllocations: new Money2(r.fromAllocations),
  };
}

export async function findReversal(conn: Queryable, tenantId: string, reversalKey: string): Promise<ReversalRow | undefined> {
  const rows = await conn.query<RawReversal>(`SELECT ${REVERSAL_COLUMNS} FROM payment_reversal WHERE tenant_id = $1 AND reversal_key = $2`, [tenantId, reversalKey]);
  return rows[0] && toReversal(rows[0]);
}

/** The reversals waiting for the payment with identity `originalKey`, in the order they arrived. */
export async function waitingReversals(conn: Queryable, tenantId: string, originalKey: string): Promise<ReversalRow[]> {
  const rows = await conn.query<RawReversal>(
    `SELECT ${REVERSAL_COLUMNS} FROM payment_reversal WHERE tenant_id = $1 AND original_key = $2 AND status = 'waiting' ORDER BY created_at, id`,
    [tenantId, originalKey],
  );
  return rows.map(toReversal);
}

/** The reversals applied to one payment, in the order they arrived. */
export async function appliedReversalsOf(conn: Queryable, tenantId: string, paymentId: string): Promise<ReversalRow[]> {
  const rows = await conn.query<RawReversal>(
    `SELECT ${REVERSAL_COLUMNS} FROM payment_reversal WHERE tenant_id = $1 AND payment_id = $2 AND status = 'applied' ORDER BY created_at, id`,
    [tenantId, paymentId],
  );
  return rows.map(toReversal);
}

/** Every reversal of the tenant (check.ts), in the order they arrived. */
export async function listReversals(conn: Queryable, tenantId: string): Promise<ReversalRow[]> {
  const rows = await conn.query<RawReversal>(`SELECT ${REVERSAL_COLUMNS} FROM payment_reversal WHERE tenant_id = $1 ORDER BY created_at, id`, [tenantId]);
  return rows.map(toReversal);
}

/** Inserts or (same id) replaces a reversal row. */
export async function saveReversal(conn: Queryable, tenantId: string, r: ReversalRow): Promise<void> {
  await conn.query(
    `INSERT INTO payment_reversal (tenant_id, id, reversal_key, source, kind, original_key, reversal_trace_id, requested_amount,
        amount, from_balance, from_applied, from_allocations, status, refusal, payment_id, reversal_date, payment_reconciliation_id,
        identifiers, applied_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8::numeric, $9::numeric, $10::numeric, $11::numeric, $12::numeric, $13, $14, $15,
        $16::date, $17, $18::jsonb, CASE WHEN $13 = 'applied' THEN now() END)
     ON CONFLICT (tenant_id, id) DO UPDATE SET
        amount = EXCLUDED.amount, from_balance = EXCLUDED.from_balance, from_applied = EXCLUDED.from_applied,
        from_allocations = EXCLUDED.from_allocations, status = EXCLUDED.status, refusal = EXCLUDED.refusal,
        payment_id = EXCLUDED.payment_id, payment_reconciliation_id = EXCLUDED.payment_reconciliation_id,
        applied_at = EXCLUDED.applied_at`,
    [
      tenantId, r.id, r.reversalKey, r.source, r.kind, r.originalKey, r.reversalTraceId, r.requestedAmount && sql(r.requestedAmount),
      sql(r.amount), sql(r.fromBalance), sql(r.fromApplied), sql(r.fromAllocations), r.status, r.refusal, r.paymentId,
      r.reversalDate, r.paymentReconciliationId, r.identifiers && JSON.stringify(r.identifiers),
    ],
  );
}

// ---- unmatched payments ------------------------------------------------------------------------

export type HoldMode = 'hold' | 'hold-for-operator';

export interface UnmatchedRow {
  id: string;
  paymentKey: string;
  source: string;
  billId: string;
  mode: HoldMode;
  amount: Amount;
  /** The payment command as it arrived (amount as decimal text). */
  input: Record<string, unknown>;
  status: 'waiting' | 'applied' | 'discarded';
  reason: string | null;
  paymentId: string | null;
  receivedAt: string;
  /** Seconds since it arrived. */
  ageSeconds: number;
}

const UNMATCHED_COLUMNS = `id, payment_key AS "paymentKey", source, bill_id AS "billId", mode, amount::text AS amount, input,
  status, reason, payment_id AS "paymentId", to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "receivedAt",
  floor(extract(epoch FROM now() - received_at))::int AS "ageSeconds"`;

type RawUnmatched = Omit<UnmatchedRow, 'amount'> & { amount: string };

function toUnmatched(r: RawUnmatched): UnmatchedRow {
  return { ...r, amount: new Money2(r.amount), ageSeconds: Number(r.ageSeconds) };
}

export async function findUnmatchedByKey(conn: Queryable, tenantId: string, paymentKey: string): Promise<UnmatchedRow | undefined> {
  const rows = await conn.query<RawUnmatched>(`SELECT ${UNMATCHED_COLUMNS} FROM unmatched_payment WHERE tenant_id = $1 AND payment_key = $2`, [tenantId, paymentKey]);
  return rows[0] && toUnmatched(rows[0]);
}

/** One unmatched payment, locked until the transaction ends (so it is applied or discarded once). */
export async function lockUnmatched(conn: Queryable, tenantId: string, id: string): Promise<UnmatchedRow | undefined> {
  const rows = await conn.query<RawUnmatched>(`SELECT ${UNMATCHED_COLUMNS} FROM unmatched_payment WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, [tenantId, id]);
  return rows[0] && toUnmatched(rows[0]);
}

export async function insertUnmatched(
  conn: Queryable,
  tenantId: string,
  u: { id: string; paymentKey: string; source: string; billId: string; mode: HoldMode; amount: Amount; input: Record<string, unknown> },
): Promise<void> {
  await conn.query(
    `INSERT INTO unmatched_payment (tenant_id, id, payment_key, source, bill_id, mode, amount, input)
     VALUES ($1, $2, $3, $4, $5, $6, $7::numeric, $8::jsonb)`,
    [tenantId, u.id, u.paymentKey, u.source, u.billId, u.mode, sql(u.amount), JSON.stringify(u.input)],
  );
}

/** A resend of a waiting payment: its new amount and details. */
export async function updateUnmatchedInput(conn: Queryable, tenantId: string, id: string, amount: Amount, input: Record<string, unknown>): Promise<void> {
  await conn.query(
    'UPDATE unmatched_payment SET amount = $3::numeric, input = $4::jsonb, updated_at = now() WHERE tenant_id = $1 AND id = $2',
    [tenantId, id, sql(amount), JSON.stringify(input)],
  );
}

export async function resolveUnmatched(
  conn: Queryable,
  tenantId: string,
  id: string,
  resolution: { status: 'applied'; paymentId: string } | { status: 'discarded'; reason: string },
): Promise<void> {
  await conn.query(
    `UPDATE unmatched_payment SET status = $3, payment_id = $4, reason = $5, resolved_at = now(), updated_at = now()
      WHERE tenant_id = $1 AND id = $2`,
    [tenantId, id, resolution.status, resolution.status === 'applied' ? resolution.paymentId : null, resolution.status === 'discarded' ? resolution.reason : null],
  );
}

/** What waits (status waiting), oldest first; `tenantId` undefined: every tenant (operator's view). */
export async function listWaitingUnmatched(
  conn: Queryable,
  filter: { tenantId?: string; source?: string },
): Promise<(UnmatchedRow & { tenantId: string })[]> {
  const rows = await conn.query<RawUnmatched & { tenantId: string }>(
    `SELECT tenant_id AS "tenantId", ${UNMATCHED_COLUMNS} FROM unmatched_payment
      WHERE status = 'waiting' AND ($1::text IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR source = $2)
      ORDER BY received_at, id LIMIT 1000`,
    [filter.tenantId ?? null, filter.source ?? null],
  );
  return rows.map((r) => ({ ...toUnmatched(r), tenantId: r.tenantId }));
}

/** Every unmatched payment of the tenant (check.ts). */
export async function listUnmatched(conn: Queryable, tenantId: string): Promise<UnmatchedRow[]> {
  const rows = await conn.query<RawUnmatched>(`SELECT ${UNMATCHED_COLUMNS} FROM unmatched_payment WHERE tenant_id = $1 ORDER BY received_at, id`, [tenantId]);
  return rows.map(toUnmatched);
}

/** The tenants holding an unmatched payment with this id (ids are UUIDs: one, or none). */
export async function unmatchedTenants(conn: Queryable, id: string): Promise<string[]> {
  const rows = await conn.query<{ tenantId: string }>('SELECT tenant_id AS "tenantId" FROM unmatched_payment WHERE id = $1', [id]);
  return rows.map((r) => r.tenantId);
}

/** An unmatched payment's identity (it never changes), read without a lock. */
export async function unmatchedKey(conn: Queryable, tenantId: string, id: string): Promise<string | undefined> {
  const rows = await conn.query<{ key: string }>('SELECT payment_key AS key FROM unmatched_payment WHERE tenant_id = $1 AND id = $2', [tenantId, id]);
  return rows[0]?.key;
}
