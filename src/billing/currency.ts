import type { PostgresRepository } from '../fhir/repository.ts';
import { refuse } from './result.ts';
import type { BillingResult } from './result.ts';
import { bookCurrency } from './currency-store.ts';

/**
 * The tenant's book currency for a command, read once in its transaction; a refusal (400) when the
 * sender states its amounts in another currency, since amounts are never converted. `stated`
 * undefined: the sender names no currency and means the tenant's.
 */
export async function currencyOf(repo: PostgresRepository, stated: string | undefined, field = 'currency'): Promise<BillingResult<string>> {
  const book = await bookCurrency(repo.conn, repo.context.tenantId);
  if (stated !== undefined && stated.toUpperCase() !== book) {
    return refuse('invalid', `The amount is in ${stated.toUpperCase()} but this tenant's books are in ${book}; amounts are never converted`, field);
  }
  return { ok: true, value: book };
}
