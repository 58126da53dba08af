import type { Queryable } from '../db/index.ts';
import { Money2, sql } from './money.ts';
import type { Amount } from './money.ts';

/**
 * SQL of payer remittances (migrations/013_remittances.sql): one row per payer payment, one per
 * claim payment in it (applied, or waiting for its claim), and the two ledger questions releasing
 * an over-applied lifecycle asks. Callers hold the transaction; every statement is keyed by tenant.
 */

export interface RemittanceRow {
  id: string;
  traceKey: string;
  paymentReconciliationId: string;
  contentHash: string;
  /** What the PaymentReconciliation is rebuilt from: its template and the provider-level adjustment details. */
  header: Record<string, unknown>;
}

export async function findRemittance(conn: Queryable, tenantId: string, traceKey: string): Promise<RemittanceRow | undefined> {
  const rows = await conn.query<RemittanceRow>(
    `SELECT id, trace_key AS "traceKey", payment_reconciliation_id AS "paymentReconciliationId", content_hash AS "contentHash", header
       FROM remittance WHERE tenant_id = $1 AND trace_key = $2`,
    [tenantId, traceKey],
  );
  return rows[0];
}

export async function readRemittance(conn: Queryable, tenantId: string, id: string): Promise<RemittanceRow> {
  const rows = await conn.query<RemittanceRow>(
    `SELECT id, trace_key AS "traceKey", payment_reconciliation_id AS "paymentReconciliationId", content_hash AS "contentHash", header
       FROM remittance WHERE tenant_id = $1 AND id = $2`,
    [tenantId, id],
  );
  if (!rows[0]) throw new Error(`Remittance ${id} not found`);
  return rows[0];
}

export async function insertRemittance(
  conn: Queryable,
  tenantId: string,
  r: { id: string; traceKey: string; traceNumber: string; payerId: string; paymentAmount: Amount; paymentDate: string; paymentReconciliationId: string; header: Record<string, unknown> },
): Promise<void> {
  await conn.query(
    `INSERT INTO remittance (tenant_id, id, trace_key, trace_number, payer_id, payment_amount, payment_date, payment_reconciliation_id, content_hash, header)
     VALUES ($1, $2, $3, $4, $5, $6::numeric, $7::date, $8, '', $9::jsonb)`,
    [tenantId, r.id, r.traceKey, r.traceNumber, r.payerId, sql(r.paymentAmount), r.paymentDate, r.paymentReconciliationId, JSON.stringify(r.header)],
  );
}

export async function closeRemittance(conn: Queryable, tenantId: string, id: string, contentHash: string, header: Record<string, unknown>): Promise<void> {
  await conn.query('UPDATE remittance SET content_hash = $3, header = $4::jsonb WHERE tenant_id = $1 AND id = $2', [tenantId, id, contentHash, JSON.stringify(header)]);
}

export interface RemittanceClaimRow {
  remittanceId: string;
  seq: number;
  billId: string;
  claimIdSystem: string;
  payerClaimId: string | null;
  statusCode: string;
  paidAmount: Amount;
  status: 'applied' | 'waiting';
  claimId: string | null;
  claimResponseId: string | null;
  adjudication: Record<string, unknown>;
}

const CLAIM_COLUMNS = `remittance_id AS "remittanceId", seq, bill_id AS "billId", claim_id_system AS "claimIdSystem",
  payer_claim_id AS "payerClaimId", status_code AS "statusCode", paid_amount::text AS "paidAmount", status,
  claim_id AS "claimId", claim_response_id AS "claimResponseId", adjudication`;

type RawClaim = Omit<RemittanceClaimRow, 'paidAmount'> & { paidAmount: string };
const toClaim = (r: RawClaim): RemittanceClaimRow => ({ ...r, seq: Number(r.seq), paidAmount: new Money2(r.paidAmount) });

export async function saveRemittanceClaim(conn: Queryable, tenantId: string, c: RemittanceClaimRow): Promise<void> {
  await conn.query(
    `INSERT INTO remittance_claim (tenant_id, remittance_id, seq, bill_id, claim_id_system, payer_claim_id, status_code, paid_amount,
        status, claim_id, claim_response_id, adjudication, applied_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8::numeric, $9, $10, $11, $12::jsonb, CASE WHEN $9 = 'applied' THEN now() END)
     ON CONFLICT (tenant_id, remittance_id, seq) DO UPDATE SET status = EXCLUDED.status, claim_id = EXCLUDED.claim_id,
        claim_response_id = EXCLUDED.claim_response_id, applied_at = EXCLUDED.applied_at`,
    [tenantId, c.remittanceId, c.seq, c.billId, c.claimIdSystem, c.payerClaimId, c.statusCode, sql(c.paidAmount), c.status, c.claimId, c.claimResponseId, JSON.stringify(c.adjudication)],
  );
}

/** Several new claim payments in one statement (as saveRemittanceClaim would each). */
export async function saveRemittanceClaims(conn: Queryable, tenantId: string, claims: readonly RemittanceClaimRow[]): Promise<void> {
  if (claims.length === 0) return;
  const params: unknown[] = [tenantId];
  const values = claims.map((c) => {
    const at = params.length;
    params.push(c.remittanceId, c.seq, c.billId, c.claimIdSystem, c.payerClaimId, c.statusCode, sql(c.paidAmount), c.status, c.claimId, c.claimResponseId, JSON.stringify(c.adjudication));
    const $ = (k: number): string => `$${at + k}`;
    return `($1, ${$(1)}, ${$(2)}::int, ${$(3)}, ${$(4)}, ${$(5)}, ${$(6)}, ${$(7)}::numeric, ${$(8)}, ${$(9)}, ${$(10)}, ${$(11)}::jsonb, CASE WHEN ${$(8)} = 'applied' THEN now() END)`;
  });
  await conn.query(
    `INSERT INTO remittance_claim (tenant_id, remittance_id, seq, bill_id, claim_id_system, payer_claim_id, status_code, paid_amount,
        status, claim_id, claim_response_id, adjudication, applied_at)
     VALUES ${values.join(', ')}
     ON CONFLICT (tenant_id, remittance_id, seq) DO UPDATE SET status = EXCLUDED.status, claim_id = EXCLUDED.claim_id,
        claim_response_id = EXCLUDED.claim_response_id, applied_at = EXCLUDED.applied_at`,
    params,
  );
}

/** The remittance's claims in file order. */
export async function remittanceClaims(conn: Queryable, tenantId: string, remittanceId: string): Promise<RemittanceClaimRow[]> {
  const rows = await conn.query<RawClaim>(`SELECT ${CLAIM_COLUMNS} FROM remittance_claim WHERE tenant_id = $1 AND remittance_id = $2 ORDER BY seq`, [tenantId, remittanceId]);
  return rows.map(toClaim);
}

/** Waiting claim payments whose bill id is one of `billIds`, locked, in the order they arrived. */
export async function lockWaitingClaims(conn: Queryable, tenantId: string, billIds: string[]): Promise<RemittanceClaimRow[]> {
  if (billIds.length === 0) return [];
  const rows = await conn.query<RawClaim>(
    `SELECT ${CLAIM_COLUMNS} FROM remittance_claim WHERE tenant_id = $1 AND status = 'waiting' AND bill_id = ANY($2::text[])
      ORDER BY created_at, remittance_id, seq FOR UPDATE`,
    [tenantId, billIds],
  );
  return rows.map(toClaim);
}

/** Waiting claim payments (the operator's view), oldest first; `tenantId` undefined: every tenant's. */
export async function listWaitingClaims(conn: Queryable, tenantId: string | undefined): Promise<(RemittanceClaimRow & { tenantId: string; traceKey: string; receivedAt: string })[]> {
  const rows = await conn.query<RawClaim & { tenantId: string; traceKey: string; receivedAt: string }>(
    `SELECT c.tenant_id AS "tenantId", r.trace_key AS "traceKey", to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "receivedAt",
            c.remittance_id AS "remittanceId", c.seq, c.bill_id AS "billId", c.claim_id_system AS "claimIdSystem",
            c.payer_claim_id AS "payerClaimId", c.status_code AS "statusCode", c.paid_amount::text AS "paidAmount", c.status,
            c.claim_id AS "claimId", c.claim_response_id AS "claimResponseId", c.adjudication
       FROM remittance_claim c JOIN remittance r ON r.tenant_id = c.tenant_id AND r.id = c.remittance_id
      WHERE c.status = 'waiting' AND ($1::text IS NULL OR c.tenant_id = $1)
      ORDER BY c.created_at, c.seq LIMIT 1000`,
    [tenantId ?? null],
  );
  return rows.map((r) => ({ ...toClaim(r), tenantId: r.tenantId, traceKey: r.traceKey, receivedAt: r.receivedAt }));
}

/** A lifecycle's credit allocations still holding money, newest first. */
export async function lifecycleAllocations(conn: Queryable, tenantId: string, lifecycleId: string): Promise<{ allocationId: string; creditId: string; claimId: string | null; net: Amount }[]> {
  const rows = await conn.query<{ allocationId: string; creditId: string; claimId: string | null; net: string }>(
    `SELECT allocation_id AS "allocationId", credit_id AS "creditId", min(claim_id) AS "claimId", sum(amount)::text AS net
       FROM ledger_entry
      WHERE tenant_id = $1 AND account_type = 'lifecycle' AND account_id = $2 AND allocation_id IS NOT NULL
      GROUP BY allocation_id, credit_id HAVING sum(amount) > 0
      ORDER BY min(id) DESC`,
    [tenantId, lifecycleId],
  );
  return rows.map((r) => ({ ...r, net: new Money2(r.net) }));
}

/** Identities of the active payments that applied money to the lifecycle directly, newest first. */
export async function lifecyclePaymentKeys(conn: Queryable, tenantId: string, lifecycleId: string): Promise<string[]> {
  const rows = await conn.query<{ key: string }>(
    `SELECT payment_key AS key FROM patient_payment
      WHERE tenant_id = $1 AND lifecycle_id = $2 AND status = 'active' AND applied_amount > 0
      ORDER BY created_at DESC, id DESC`,
    [tenantId, lifecycleId],
  );
  return rows.map((r) => r.key);
}

/** Every remittance of the tenant with its payment amount (check-remittances.ts). */
export async function listRemittances(conn: Queryable, tenantId: string): Promise<{ id: string; paymentReconciliationId: string; paymentAmount: Amount }[]> {
  const rows = await conn.query<{ id: string; paymentReconciliationId: string; paymentAmount: string }>(
    `SELECT id, payment_reconciliation_id AS "paymentReconciliationId", payment_amount::text AS "paymentAmount"
       FROM remittance WHERE tenant_id = $1 ORDER BY created_at, id`,
    [tenantId],
  );
  return rows.map((r) => ({ ...r, paymentAmount: new Money2(r.paymentAmount) }));
}
