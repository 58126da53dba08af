import type { Queryable } from '../db/index.ts';

/**
 * SQL of reported adjudications (migrations/012_adjudications.sql): one row per response identity,
 * with the order it was last applied in and, while its claim is missing, the command that waits.
 * Callers hold the transaction; every statement is keyed by tenant first.
 */
export interface AdjudicationRow {
  responseKey: string;
  source: string;
  billId: string;
  /** ISO instant of the state last taken. */
  asOf: string;
  stage: number;
  final: boolean;
  /** The command as it arrived (amounts as decimal text). */
  input: Record<string, unknown>;
  status: 'waiting' | 'applied';
  claimResponseId: string | null;
  paymentReconciliationId: string | null;
}

const COLUMNS = `response_key AS "responseKey", source, bill_id AS "billId",
  to_char(as_of AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "asOf", stage, final, input, status,
  claim_response_id AS "claimResponseId", payment_reconciliation_id AS "paymentReconciliationId"`;

const toRow = (r: AdjudicationRow): AdjudicationRow => ({ ...r, input: typeof r.input === 'string' ? JSON.parse(r.input) : r.input, stage: Number(r.stage) });

/** Serializes every command on one response identity until the transaction ends. */
export async function lockAdjudication(conn: Queryable, tenantId: string, responseKey: string): Promise<void> {
  await conn.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [JSON.stringify(['adjudication', tenantId, responseKey])]);
}

export async function findAdjudication(conn: Queryable, tenantId: string, responseKey: string): Promise<AdjudicationRow | undefined> {
  const rows = await conn.query<AdjudicationRow>(`SELECT ${COLUMNS} FROM adjudication WHERE tenant_id = $1 AND response_key = $2`, [tenantId, responseKey]);
  return rows[0] && toRow(rows[0]);
}

export async function saveAdjudication(conn: Queryable, tenantId: string, r: AdjudicationRow): Promise<void> {
  await conn.query(
    `INSERT INTO adjudication (tenant_id, response_key, source, bill_id, as_of, stage, final, input, status, claim_response_id, payment_reconciliation_id)
     VALUES ($1, $2, $3, $4, $5::timestamptz, $6, $7, $8::jsonb, $9, $10, $11)
     ON CONFLICT (tenant_id, response_key) DO UPDATE SET
       bill_id = EXCLUDED.bill_id, as_of = EXCLUDED.as_of, stage = EXCLUDED.stage, final = EXCLUDED.final, input = EXCLUDED.input,
       status = EXCLUDED.status, claim_response_id = EXCLUDED.claim_response_id,
       payment_reconciliation_id = EXCLUDED.payment_reconciliation_id, updated_at = now()`,
    [tenantId, r.responseKey, r.source, r.billId, r.asOf, r.stage, r.final, JSON.stringify(r.input), r.status, r.claimResponseId, r.paymentReconciliationId],
  );
}

/** Response identities waiting for a claim with one of these bill ids, oldest first. */
export async function waitingForBillIds(conn: Queryable, tenantId: string, billIds: string[]): Promise<string[]> {
  if (billIds.length === 0) return [];
  const rows = await conn.query<{ key: string }>(
    `SELECT response_key AS key FROM adjudication WHERE tenant_id = $1 AND status = 'waiting' AND bill_id = ANY($2::text[]) ORDER BY received_at, response_key`,
    [tenantId, billIds],
  );
  return rows.map((r) => r.key);
}
