import { OperationOutcomeError, getStatus } from '@medplum/core';
import type { Claim, ClaimResponse, Resource } from '@medplum/fhirtypes';
import type { Database, Queryable } from '../db/index.ts';
import { FULL_ACCESS } from '../fhir/access.ts';
import type { ChangeObserver, ResourceChange } from '../fhir/change-observer.ts';
import { PostgresRepository } from '../fhir/repository.ts';
import { creditBooks } from './books.ts';
import { lifecycleIdOf, relativeReference } from './claims.ts';
import { allocateCredit } from './credits.ts';
import { BillingFailure } from './result.ts';
import { inSavepoint, lifecycleCreditIds } from './store.ts';
import { applyWaitingRemittanceClaims } from './remittances.ts';
import { applyUnmatchedPayment } from './unmatched.ts';
import { applyWaitingAdjudications } from './adjudication.ts';
import { waitingForClaim } from './waiting-store.ts';

/**
 * Billing's side of every FHIR write, from any writer (/fhir, a transaction Bundle, a sender), in
 * that write's own transaction, so a committed Claim or ClaimResponse never leaves its money behind:
 * - a Claim whose identifiers include the bill id of a payment held with `hold`: the payment applies
 *   (exactly once: the unmatched row is locked and marked in the same transaction); likewise a
 *   payer's claim payment (remittances.ts) and an insurer's adjudication (adjudication.ts) that
 *   waited for it;
 * - an active ClaimResponse (use claim): the unallocated credit that payments for the claim's
 *   lifecycle left applies to it, oldest first, up to the new open responsibility.
 * A follow-up that meets data it cannot book (BillingFailure: e.g. a claim without a patient
 * reference, a ClaimResponse in another currency) is undone alone, in a savepoint: the client's
 * write still succeeds and the payment keeps waiting.
 * `observer` is the composed observer (app.ts), so billing's own writes are observed too.
 */
export function billingObserver(options: { db: Database; observer: () => ChangeObserver }): ChangeObserver {
  const repoIn = (tx: Queryable, tenantId: string): PostgresRepository =>
    new PostgresRepository(options.db, { tenantId, access: FULL_ACCESS, baseUrl: '' }, { observer: options.observer(), tx });
  const undoable = (err: unknown): boolean => err instanceof BillingFailure;

  return {
    async prepare(resource: Resource): Promise<Resource> {
      return resource;
    },

    async plan(conn: Queryable, change: ResourceChange) {
      if (change.interaction === 'delete') return undefined;
      const { tenantId, resource } = change;
      if (resource.resourceType === 'Claim') {
        const claim = resource as Claim;
        if (claim.status === 'entered-in-error') return undefined;
        const values = (claim.identifier ?? []).map((i) => i.value).filter((v): v is string => typeof v === 'string');
        const { heldPayments: held, remittanceClaims: remitted, adjudications } = await waitingForClaim(conn, tenantId, values);
        if (held.length === 0 && !remitted && adjudications.length === 0) return undefined;
        return async (tx: Queryable) => {
          const repo = repoIn(tx, tenantId);
          // The payer's adjudications first: they set what a held patient payment applies against.
          if (remitted) await inSavepoint(tx, () => applyWaitingRemittanceClaims(repo, values), undoable);
          if (adjudications.length > 0) await inSavepoint(tx, () => applyWaitingAdjudications(repo, tx, values), undoable);
          for (const id of held) {
            // A refusal (the payment's claim-id system is another one; already applied) leaves it waiting.
            await inSavepoint(tx, () => applyUnmatchedPayment(repo, id, { onlyMode: 'hold' }), undoable);
          }
        };
      }
      if (resource.resourceType === 'ClaimResponse') {
        const response = resource as ClaimResponse;
        const request = response.request?.reference;
        if (response.status !== 'active' || response.use !== 'claim' || !request) return undefined;
        const [type, claimId] = relativeReference(request).split('/');
        if (type !== 'Claim' || !claimId) return undefined;
        // Most responses find no credit waiting: asked here, so they cost no savepoint.
        const waiting = await waitingCredit(repoIn(conn, tenantId), claimId);
        if (!waiting) return undefined;
        return async (tx: Queryable) => {
          await inSavepoint(tx, () => applyWaitingCredit(repoIn(tx, tenantId), claimId, waiting.creditIds), undoable);
        };
      }
      return undefined;
    },
  };
}

/** The live claim and the credits of its lifecycle (oldest payment first), when it has any. */
async function waitingCredit(repo: PostgresRepository, claimId: string): Promise<{ creditIds: string[] } | undefined> {
  const claim = await repo.readResource<Claim>('Claim', claimId).catch((err: unknown) => {
    // A response to a claim that is not here (or deleted) has no credit to take.
    const status = err instanceof OperationOutcomeError ? getStatus(err.outcome) : undefined;
    if (status === 404 || status === 410) return undefined;
    throw err;
  });
  if (!claim || claim.status === 'entered-in-error') return undefined;
  const creditIds = await lifecycleCreditIds(repo.conn, repo.context.tenantId, lifecycleIdOf(claim));
  return creditIds.length > 0 ? { creditIds } : undefined;
}

/** Allocates the lifecycle's unallocated credits (oldest payment first) to the claim, as far as it owes. */
async function applyWaitingCredit(repo: PostgresRepository, claimId: string, creditIds: string[]): Promise<void> {
  for (const creditId of creditIds) {
    if (!(await creditBooks(repo, creditId)).balance.gt(0)) continue;
    const result = await allocateCredit(repo, { creditId, claim: `Claim/${claimId}` });
    // Nothing (more) open on the claim: the rest of the credit keeps waiting.
    if (!result.ok) break;
  }
}
