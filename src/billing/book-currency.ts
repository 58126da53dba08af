import type { Database } from '../db/index.ts';
import { bookCurrencyProblem } from '../iso4217.ts';
import { lockBookCurrency, setBookCurrency, tenantHasMoney } from './currency-store.ts';
import type { TenantBooks } from './currency-store.ts';
import { refuse } from './result.ts';
import type { BillingResult } from './result.ts';

/**
 * Changes a tenant's book currency, only while no money is booked for it: amounts already booked
 * would be in the old currency, and are never converted. Under the currency lock taken
 * exclusively, so no billing transaction books money in between the check and the change. The
 * same currency again is no change (and no refusal). Called by the admin API (PATCH
 * /admin/tenants/:id) and the command line (tenants set-currency).
 */
export async function changeBookCurrency(db: Database, tenantId: string, currency: string): Promise<BillingResult<TenantBooks>> {
  const problem = bookCurrencyProblem(currency);
  if (problem) return refuse('invalid', problem, 'currency');
  return db.transaction(async (tx) => {
    const tenant = await lockBookCurrency(tx, tenantId);
    if (!tenant) return refuse('not-found', `Unknown tenant: ${tenantId}`);
    if (tenant.currency !== currency) {
      if (await tenantHasMoney(tx, tenantId)) {
        return refuse('conflict', `Tenant ${tenantId} has money booked in ${tenant.currency}; its book currency cannot change to ${currency}`);
      }
      await setBookCurrency(tx, tenantId, currency);
    }
    return { ok: true, value: { ...tenant, currency } };
  });
}
