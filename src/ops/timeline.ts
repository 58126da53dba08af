import { Operator } from '@medplum/core';
import type { ClaimResponse } from '@medplum/fhirtypes';
import { ZERO, bookCurrency, fixed, memberLiabilityOf } from '../billing/index.ts';
import type { PostgresRepository } from '../fhir/repository.ts';
import { claimTimeline } from './money.ts';
import type { TimelineEntry } from './money.ts';

export interface AdjudicationEntry extends Omit<TimelineEntry, 'kind' | 'amount'> {
  kind: 'adjudication';
  /** The patient responsibility it states (decimal text), as billing reads it. */
  amount: string;
}

/**
 * A claim's whole timeline, oldest first: its ClaimResponses with the patient responsibility each
 * states (billing's reading of them: claims.ts memberLiabilityOf), and the money of its lifecycle
 * (money.ts claimTimeline), so a reader only displays it.
 */
export async function fullClaimTimeline(repo: PostgresRepository, claimId: string): Promise<{ currency: string; entries: (TimelineEntry | AdjudicationEntry)[] }> {
  const responses = await repo.searchResources<ClaimResponse>({
    resourceType: 'ClaimResponse',
    filters: [{ code: 'request', operator: Operator.EQUALS, value: `Claim/${claimId}` }],
    count: 1000,
  });
  const currency = await bookCurrency(repo.conn, repo.context.tenantId);
  const adjudications: AdjudicationEntry[] = responses.map((cr) => ({
    at: cr.created ?? cr.meta?.lastUpdated ?? '',
    kind: 'adjudication',
    amount: safeLiability(cr, currency),
    detail: `ClaimResponse ${cr.status}${cr.use && cr.use !== 'claim' ? ` (${cr.use})` : ''}, ${cr.outcome ?? ''}`,
    reference: `ClaimResponse/${cr.id}`,
  }));
  const money = await claimTimeline(repo.conn, repo.context.tenantId, claimId);
  const entries = [...adjudications, ...money].sort((a, b) => Date.parse(a.at) - Date.parse(b.at) || a.kind.localeCompare(b.kind));
  // Every amount of the lifecycle is in the tenant's book currency (billing refuses any other).
  return { currency, entries };
}

/** A response in another currency states no amount we bill (billing refuses to apply it). */
function safeLiability(cr: ClaimResponse, currency: string): string {
  try {
    return fixed(memberLiabilityOf(cr, currency), currency);
  } catch {
    return fixed(ZERO, currency);
  }
}
