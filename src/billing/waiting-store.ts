import type { Queryable } from '../db/index.ts';

/** What waits for a claim with one of a Claim's bill ids, each kind oldest first. */
export interface WaitingForClaim {
  /** Unmatched patient payments held (mode `hold`) for it: their ids. */
  heldPayments: string[];
  /** Whether a payer's remittance claim payment waits for it. */
  remittanceClaims: boolean;
  /** Insurers' adjudications waiting for it: their response keys. */
  adjudications: string[];
}

/**
 * Asked on every Claim write (observer.ts): one statement for the three tables, each lookup on
 * its waiting index (migrations 005, 012, 013), instead of three round trips in the write.
 */
export async function waitingForClaim(conn: Queryable, tenantId: string, billIds: string[]): Promise<WaitingForClaim> {
  if (billIds.length === 0) return { heldPayments: [], remittanceClaims: false, adjudications: [] };
  const [row] = await conn.query<WaitingForClaim>(
    `SELECT ARRAY(SELECT id FROM unmatched_payment WHERE tenant_id = $1 AND status = 'waiting' AND mode = 'hold' AND bill_id = ANY($2::text[])
                   ORDER BY received_at, id) AS "heldPayments",
            EXISTS (SELECT 1 FROM remittance_claim WHERE tenant_id = $1 AND status = 'waiting' AND bill_id = ANY($2::text[])) AS "remittanceClaims",
            ARRAY(SELECT response_key FROM adjudication WHERE tenant_id = $1 AND status = 'waiting' AND bill_id = ANY($2::text[])
                   ORDER BY received_at, response_key) AS adjudications`,
    [tenantId, billIds],
    { prepare: true },
  );
  return row;
}
