import { OperationOutcomeError, forbidden } from '@medplum/core';
import type { OperationOutcome } from '@medplum/fhirtypes';

/**
 * What a caller may do, per resource type, in SMART v2 terms: c(reate), r(ead: read, vread,
 * instance history, _include), u(pdate, patch), d(elete), s(earch, type history, _revinclude).
 * The repository asks it before every interaction, so batch and transaction entries, conditional
 * interactions and includes all meet the same check. auth/ implements it from token scopes;
 * fhir/ does not know about tokens.
 */
export type ScopeInteraction = 'c' | 'r' | 'u' | 'd' | 's';

export interface AccessPolicy {
  allows(resourceType: string, interaction: ScopeInteraction): boolean;
}

/** Everything, in every type: for the server's own work (billing commands, workers), never for a request. */
export const FULL_ACCESS: AccessPolicy = { allows: () => true };

const NAMES: Record<ScopeInteraction, string> = { c: 'create', r: 'read', u: 'update', d: 'delete', s: 'search' };

/** 403 OperationOutcome naming the scope that is missing. */
export function assertAllowed(access: AccessPolicy, resourceType: string, interaction: ScopeInteraction): void {
  if (access.allows(resourceType, interaction)) return;
  const text = `The access token's scopes do not allow ${NAMES[interaction]} on ${resourceType} (needs system/${resourceType}.${interaction})`;
  const outcome: OperationOutcome = { ...forbidden, issue: [{ severity: 'error', code: 'forbidden', details: { text } }] };
  throw new OperationOutcomeError(outcome);
}
