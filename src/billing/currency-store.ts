import type { Queryable } from '../db/index.ts';

/**
 * The tenant's book currency: billing's SQL on tenant.currency. One advisory lock per tenant guards
 * it: every billing transaction takes it shared before it reads the currency (bookCurrency), and a
 * change takes it exclusively (lockBookCurrency), so a change waits for money being booked, and
 * its check that none is booked sees it. An advisory lock, so that billing's share of it writes
 * nothing.
 */
const lockKey = (tenantId: string): string => JSON.stringify(['tenant-currency', tenantId]);

/**
 * The tenant's book currency, read once per billing transaction. Takes the lock shared until the
 * transaction ends, then reads: a separate statement, so its snapshot is taken after the lock.
 */
export async function bookCurrency(conn: Queryable, tenantId: string): Promise<string> {
  await conn.query('SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))', [lockKey(tenantId)]);
  const rows = await conn.query<{ currency: string }>('SELECT currency FROM tenant WHERE id = $1', [tenantId]);
  if (!rows[0]) throw new Error(`Unknown tenant: ${tenantId}`);
  return rows[0].currency;
}

export interface TenantBooks {
  id: string;
  name: string;
  currency: string;
}

/** Takes the lock exclusively until the transaction ends; the tenant, or undefined when unknown. */
export async function lockBookCurrency(conn: Queryable, tenantId: string): Promise<TenantBooks | undefined> {
  await conn.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [lockKey(tenantId)]);
  return (await conn.query<TenantBooks>('SELECT id, name, currency FROM tenant WHERE id = $1', [tenantId]))[0];
}

/**
 * Whether any money is booked for the tenant: a ledger row, a payment held unmatched or a reversal
 * waiting for its payment, an adjudication or a remittance (each holds amounts in the currency).
 */
export async function tenantHasMoney(conn: Queryable, tenantId: string): Promise<boolean> {
  const rows = await conn.query(
    `SELECT 1 WHERE EXISTS (SELECT 1 FROM ledger_entry WHERE tenant_id = $1)
        OR EXISTS (SELECT 1 FROM unmatched_payment WHERE tenant_id = $1)
        OR EXISTS (SELECT 1 FROM payment_reversal WHERE tenant_id = $1)
        OR EXISTS (SELECT 1 FROM adjudication WHERE tenant_id = $1)
        OR EXISTS (SELECT 1 FROM remittance WHERE tenant_id = $1)`,
    [tenantId],
  );
  return rows.length > 0;
}

export async function setBookCurrency(conn: Queryable, tenantId: string, currency: string): Promise<void> {
  await conn.query('UPDATE tenant SET currency = $2 WHERE id = $1', [tenantId, currency]);
}
