import { randomUUID } from 'node:crypto';
import type { Queryable } from '../db/index.ts';
import { CLAIM_ID_SYSTEM } from '../profiles/index.ts';
import { Money2, sql } from './money.ts';
import type { Amount } from './money.ts';

/**
 * Billing's own SQL (migrations/004_billing.sql): settings, the per-patient and per-lifecycle locks,
 * PatientPaymentDetails rows and the ledger. Callers hold the transaction (`tx.conn`); every
 * statement is keyed by tenant first. Amounts travel as decimal text, never as JS numbers.
 */

// ---- settings ----------------------------------------------------------------------------------

/** The Claim.identifier system bill ids are looked up in: the tenant's setting, else CLAIM_ID_SYSTEM. */
export async function claimIdSystem(conn: Queryable, tenantId: string): Promise<string> {
  const rows = await conn.query<{ claim_id_system: string }>('SELECT claim_id_system FROM billing_setting WHERE tenant_id = $1', [tenantId]);
  return rows[0]?.claim_id_system ?? CLAIM_ID_SYSTEM;
}

/** Sets (or with `undefined` resets to the default) the tenant's claim-id system. */
export async function setClaimIdSystem(conn: Queryable, tenantId: string, system: string | undefined): Promise<void> {
  if (system === undefined) {
    await conn.query('DELETE FROM billing_setting WHERE tenant_id = $1', [tenantId]);
    return;
  }
  await conn.query(
    `INSERT INTO billing_setting (tenant_id, claim_id_system) VALUES ($1, $2)
     ON CONFLICT (tenant_id) DO UPDATE SET claim_id_system = EXCLUDED.claim_id_system, updated_at = now()`,
    [tenantId, system],
  );
}

// ---- locks -------------------------------------------------------------------------------------

/**
 * Locks the patient's account row (creating it on first use) until the transaction ends. Every money
 * movement of a patient takes it first, so payments, resends and allocations of one patient run one
 * at a time, and a credit (which belongs to one patient) is never moved by two at once.
 */
export async function lockAccount(conn: Queryable, tenantId: string, patientRef: string): Promise<void> {
  await conn.query('INSERT INTO billing_account (tenant_id, patient_ref) VALUES ($1, $2) ON CONFLICT DO NOTHING', [tenantId, patientRef]);
  await conn.query('SELECT 1 FROM billing_account WHERE tenant_id = $1 AND patient_ref = $2 FOR UPDATE', [tenantId, patientRef]);
}

/**
 * Locks the lifecycle's row (creating it on first use) and returns its patientPaidAmount. Taken after
 * the account lock; it also covers a lifecycle whose claims name different patients.
 */
export async function lockLifecycle(conn: Queryable, tenantId: string, lifecycleId: string, currency: string): Promise<Amount> {
  await conn.query('INSERT INTO billing_lifecycle (tenant_id, lifecycle_id, currency) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [tenantId, lifecycleId, currency]);
  const rows = await conn.query<{ paid: string }>(
    'SELECT patient_paid_amount::text AS paid FROM billing_lifecycle WHERE tenant_id = $1 AND lifecycle_id = $2 FOR UPDATE',
    [tenantId, lifecycleId],
  );
  return new Money2(rows[0].paid);
}

/**
 * Serializes everything about one payment identity (`trace:<id>`) until the transaction ends: its
 * approval, its reversals and holding it unmatched, so that a reversal arriving while its original
 * commits either sees it or is seen by it (and waits). Taken before the account lock.
 */
export async function lockPaymentKey(conn: Queryable, tenantId: string, paymentKey: string): Promise<void> {
  await conn.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [JSON.stringify([tenantId, paymentKey])]);
}

export async function setLifecyclePaid(conn: Queryable, tenantId: string, lifecycleId: string, paid: Amount): Promise<void> {
  await conn.query(
    'UPDATE billing_lifecycle SET patient_paid_amount = $3::numeric, updated_at = now() WHERE tenant_id = $1 AND lifecycle_id = $2',
    [tenantId, lifecycleId, sql(paid)],
  );
}

// ---- PatientPaymentDetails ---------------------------------------------------------------------

export interface PaymentRow {
  id: string;
  paymentKey: string;
  source: string;
  billId: string;
  paymentTraceId: string | null;
  claimId: string;
  lifecycleId: string;
  patientRef: string;
  amount: Amount;
  appliedAmount: Amount;
  creditedAmount: Amount;
  currency: string;
  /** YYYY-MM-DD */
  paymentDate: string;
  paymentMethod: string | null;
  claimResponseId: string | null;
  paymentReconciliationId: string;
  patientCreditId: string | null;
  /** cancelled: voided (everything it moved was given back). */
  status: 'active' | 'cancelled';
  /** What its reversals (void, refunds, returns, chargebacks) gave back, in total. */
  reversedAmount: Amount;
  /** YYYY-MM-DD the processor settled it, once it says so. */
  settlementDate: string | null;
  settlementFailed: boolean;
  instrument: PaymentInstrument | null;
  identifiers: PaymentIdentifier[] | null;
}

/** The card as the processor describes it: never a full card number. */
export interface PaymentInstrument {
  brand?: string;
  lastFour?: string;
  authorizationCode?: string;
}

export interface PaymentIdentifier {
  system: string;
  value: string;
}

const PAYMENT_COLUMNS = `id, payment_key AS "paymentKey", source, bill_id AS "billId", payment_trace_id AS "paymentTraceId",
  claim_id AS "claimId", lifecycle_id AS "lifecycleId", patient_ref AS "patientRef", amount::text AS amount,
  applied_amount::text AS "appliedAmount", credited_amount::text AS "creditedAmount", currency,
  to_char(payment_date, 'YYYY-MM-DD') AS "paymentDate", payment_method AS "paymentMethod",
  claim_response_id AS "claimResponseId", payment_reconciliation_id AS "paymentReconciliationId",
  patient_credit_id AS "patientCreditId", status, reversed_amount::text AS "reversedAmount",
  to_char(settlement_date, 'YYYY-MM-DD') AS "settlementDate", settlement_failed AS "settlementFailed", instrument, identifiers`;

type MoneyField = 'amount' | 'appliedAmount' | 'creditedAmount' | 'reversedAmount';
type RawPayment = Omit<PaymentRow, MoneyField> & Record<MoneyField, string>;

function toPayment(r: RawPayment): PaymentRow {
  return {
    ...r,
    amount: new Money2(r.amount),
    appliedAmount: new Money2(r.appliedAmount),
    creditedAmount: new Money2(r.creditedAmount),
    reversedAmount: new Money2(r.reversedAmount),
  };
}

export async function findPayment(conn: Queryable, tenantId: string, paymentKey: string): Promise<PaymentRow | undefined> {
  const rows = await conn.query<RawPayment>(`SELECT ${PAYMENT_COLUMNS} FROM patient_payment WHERE tenant_id = $1 AND payment_key = $2`, [tenantId, paymentKey]);
  return rows[0] && toPayment(rows[0]);
}

export async function listPayments(conn: Queryable, tenantId: string): Promise<PaymentRow[]> {
  const rows = await conn.query<RawPayment>(`SELECT ${PAYMENT_COLUMNS} FROM patient_payment WHERE tenant_id = $1 ORDER BY created_at, id`, [tenantId]);
  return rows.map(toPayment);
}

/** Inserts or (same id) replaces a payment row. */
export async function savePayment(conn: Queryable, tenantId: string, p: PaymentRow): Promise<void> {
  await conn.query(
    `INSERT INTO patient_payment (tenant_id, id, payment_key, source, bill_id, payment_trace_id, claim_id, lifecycle_id,
        patient_ref, amount, applied_amount, credited_amount, currency, payment_date, payment_method, claim_response_id,
        payment_reconciliation_id, patient_credit_id, status, reversed_amount, settlement_date, settlement_failed, instrument, identifiers)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::numeric, $11::numeric, $12::numeric, $13, $14::date, $15, $16, $17, $18,
        $19, $20::numeric, $21::date, $22, $23::jsonb, $24::jsonb)
     ON CONFLICT (tenant_id, id) DO UPDATE SET
        amount = EXCLUDED.amount, applied_amount = EXCLUDED.applied_amount, credited_amount = EXCLUDED.credited_amount,
        payment_date = EXCLUDED.payment_date, payment_method = EXCLUDED.payment_method,
        claim_response_id = EXCLUDED.claim_response_id, patient_credit_id = EXCLUDED.patient_credit_id,
        status = EXCLUDED.status, reversed_amount = EXCLUDED.reversed_amount, settlement_date = EXCLUDED.settlement_date,
        settlement_failed = EXCLUDED.settlement_failed, instrument = EXCLUDED.instrument, identifiers = EXCLUDED.identifiers,
        updated_at = now()`,
    [
      tenantId, p.id, p.paymentKey, p.source, p.billId, p.paymentTraceId, p.claimId, p.lifecycleId, p.patientRef,
      sql(p.amount), sql(p.appliedAmount), sql(p.creditedAmount), p.currency, p.paymentDate, p.paymentMethod,
      p.claimResponseId, p.paymentReconciliationId, p.patientCreditId, p.status, sql(p.reversedAmount), p.settlementDate,
      p.settlementFailed, p.instrument && JSON.stringify(p.instrument), p.identifiers && JSON.stringify(p.identifiers),
    ],
  );
}

// ---- ledger ------------------------------------------------------------------------------------

export type AccountType = 'payer' | 'payment' | 'lifecycle' | 'credit';
export type LedgerKind =
  | 'payment.received'
  | 'payment.applied'
  | 'payment.credited'
  | 'credit.allocated'
  | 'payment.reduced'
  | 'applied.reversed'
  | 'credit.reduced'
  | 'allocation.reversed'
  // A reversal (void, refund, return, chargeback) of a payment: money back into the payment's
  // transit account from its credit or from the lifecycle it paid, then out to the payer.
  | 'reversal.from-credit'
  | 'reversal.from-claim'
  | 'payment.reversed';

export interface Account {
  type: AccountType;
  id: string;
}

export interface Movement {
  kind: LedgerKind;
  /** Money goes from this account ... */
  from: Account;
  /** ... to this one. */
  to: Account;
  amount: Amount;
  currency: string;
  paymentId?: string;
  creditId?: string;
  allocationId?: string;
  claimId?: string;
  reversalId?: string;
}

/**
 * Records one movement as two rows that sum to zero (−amount on `from`, +amount on `to`).
 * A zero amount records nothing.
 */
export async function recordMovement(conn: Queryable, tenantId: string, m: Movement): Promise<void> {
  if (m.amount.isZero()) return;
  if (m.amount.isNegative()) throw new Error(`A ledger movement is never negative (${m.kind} ${m.amount.toFixed()})`);
  const movementId = randomUUID();
  await conn.query(
    `INSERT INTO ledger_entry (tenant_id, movement_id, kind, account_type, account_id, amount, currency, payment_id, credit_id, allocation_id, claim_id, reversal_id)
     VALUES ($1, $2, $3, $4, $5, -($6::numeric), $7, $10, $11, $12, $13, $14),
            ($1, $2, $3, $8, $9, $6::numeric, $7, $10, $11, $12, $13, $14)`,
    [
      tenantId, movementId, m.kind, m.from.type, m.from.id, sql(m.amount), m.currency, m.to.type, m.to.id,
      m.paymentId ?? null, m.creditId ?? null, m.allocationId ?? null, m.claimId ?? null, m.reversalId ?? null,
    ],
  );
}

/** What an account holds: the sum of its ledger rows. */
export async function accountBalance(conn: Queryable, tenantId: string, account: Account): Promise<Amount> {
  const rows = await conn.query<{ total: string }>(
    'SELECT COALESCE(sum(amount), 0)::text AS total FROM ledger_entry WHERE tenant_id = $1 AND account_type = $2 AND account_id = $3',
    [tenantId, account.type, account.id],
  );
  return new Money2(rows[0].total);
}

/** Sums of one account's rows grouped by a column (kind or allocation_id). */
export async function accountSums(
  conn: Queryable,
  tenantId: string,
  account: Account,
  by: 'kind' | 'allocation_id',
): Promise<Map<string, Amount>> {
  const rows = await conn.query<{ key: string | null; total: string }>(
    `SELECT ${by} AS key, sum(amount)::text AS total FROM ledger_entry
      WHERE tenant_id = $1 AND account_type = $2 AND account_id = $3 GROUP BY ${by}`,
    [tenantId, account.type, account.id],
  );
  return new Map(rows.filter((r) => r.key !== null).map((r) => [r.key!, new Money2(r.total)]));
}

export interface BalanceRow {
  accountType: AccountType;
  accountId: string;
  total: Amount;
}

/** Every account's balance in the tenant. */
export async function allBalances(conn: Queryable, tenantId: string): Promise<BalanceRow[]> {
  const rows = await conn.query<{ accountType: AccountType; accountId: string; total: string }>(
    `SELECT account_type AS "accountType", account_id AS "accountId", sum(amount)::text AS total
       FROM ledger_entry WHERE tenant_id = $1 GROUP BY account_type, account_id`,
    [tenantId],
  );
  return rows.map((r) => ({ ...r, total: new Money2(r.total) }));
}

/** Movements whose rows do not sum to zero (there should be none). */
export async function unbalancedMovements(conn: Queryable, tenantId: string): Promise<string[]> {
  const rows = await conn.query<{ movementId: string }>(
    `SELECT movement_id AS "movementId" FROM ledger_entry WHERE tenant_id = $1
      GROUP BY movement_id HAVING sum(amount) <> 0 OR count(*) <> 2`,
    [tenantId],
  );
  return rows.map((r) => r.movementId);
}

export async function lifecycleRows(conn: Queryable, tenantId: string): Promise<{ lifecycleId: string; paid: Amount }[]> {
  const rows = await conn.query<{ lifecycleId: string; paid: string }>(
    'SELECT lifecycle_id AS "lifecycleId", patient_paid_amount::text AS paid FROM billing_lifecycle WHERE tenant_id = $1',
    [tenantId],
  );
  return rows.map((r) => ({ lifecycleId: r.lifecycleId, paid: new Money2(r.paid) }));
}

export interface AllocationNet {
  allocationId: string;
  lifecycleId: string;
  claimId: string | null;
  /** What is still allocated: credit.allocated less allocation.reversed. */
  net: Amount;
  /** Ledger id of its first row, for newest-first order. */
  firstEntry: number;
}

/** The credit's allocations as the ledger has them, newest first. */
export async function creditAllocations(conn: Queryable, tenantId: string, creditId: string): Promise<AllocationNet[]> {
  const rows = await conn.query<{ allocationId: string; lifecycleId: string; claimId: string | null; net: string; firstEntry: string }>(
    `SELECT allocation_id AS "allocationId", account_id AS "lifecycleId", min(claim_id) AS "claimId",
            sum(amount)::text AS net, min(id)::text AS "firstEntry"
       FROM ledger_entry
      WHERE tenant_id = $1 AND credit_id = $2 AND account_type = 'lifecycle' AND allocation_id IS NOT NULL
      GROUP BY allocation_id, account_id
      ORDER BY min(id) DESC`,
    [tenantId, creditId],
  );
  return rows.map((r) => ({ ...r, net: new Money2(r.net), firstEntry: Number(r.firstEntry) }));
}

/** Ids of the PatientCredits that payments for lifecycle `lifecycleId` made, oldest first. */
export async function lifecycleCreditIds(conn: Queryable, tenantId: string, lifecycleId: string): Promise<string[]> {
  const rows = await conn.query<{ id: string }>(
    `SELECT patient_credit_id AS id FROM patient_payment
      WHERE tenant_id = $1 AND lifecycle_id = $2 AND patient_credit_id IS NOT NULL AND status = 'active'
      ORDER BY created_at, id`,
    [tenantId, lifecycleId],
  );
  return rows.map((r) => r.id);
}

/**
 * Runs `fn` inside a savepoint of the open transaction: when it throws an error `undo` accepts,
 * only what `fn` wrote is rolled back and `undefined` is returned; the transaction goes on.
 */
export async function inSavepoint<T>(conn: Queryable, fn: () => Promise<T>, undo: (err: unknown) => boolean): Promise<T | undefined> {
  await conn.query('SAVEPOINT billing_followup');
  try {
    const result = await fn();
    await conn.query('RELEASE SAVEPOINT billing_followup');
    return result;
  } catch (err) {
    if (!undo(err)) throw err;
    await conn.query('ROLLBACK TO SAVEPOINT billing_followup');
    await conn.query('RELEASE SAVEPOINT billing_followup');
    return undefined;
  }
}

/** A reversal's movements by kind: the amount each moved (its positive rows). */
export async function reversalMovements(conn: Queryable, tenantId: string, reversalId: string): Promise<Map<string, Amount>> {
  const rows = await conn.query<{ kind: string; total: string }>(
    `SELECT kind, sum(amount)::text AS total FROM ledger_entry WHERE tenant_id = $1 AND reversal_id = $2 AND amount > 0 GROUP BY kind`,
    [tenantId, reversalId],
  );
  return new Map(rows.map((r) => [r.kind, new Money2(r.total)]));
}
