import type { Queryable } from '../db/index.ts';

/**
 * The tenant's book currency, read once per billing transaction. Takes the tenant's currency lock
 * shared until the transaction ends (auth/store.ts lockTenantCurrency takes it exclusively to change
 * the currency), then reads: a separate statement, so its snapshot is taken after the lock.
 */
export async function bookCurrency(conn: Queryable, tenantId: string): Promise<string> {
  await conn.query('SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))', [JSON.stringify(['tenant-currency', tenantId])]);
  const rows = await conn.query<{ currency: string }>('SELECT currency FROM tenant WHERE id = $1', [tenantId]);
  if (!rows[0]) throw new Error(`Unknown tenant: ${tenantId}`);
  return rows[0].currency;
}
