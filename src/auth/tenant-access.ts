import type { Response } from 'express';
import { ADMIN_SCOPE } from './scopes.ts';
import type { AuthLocals } from './middleware.ts';

/**
 * Who may read which tenant's operator views. The `admin` scope (an operator's) reads any tenant,
 * named by `tenant` (default: the token's). A tenant's client reads its own tenant only, when its
 * FHIR scopes cover what the view shows, so the console shows a tenant client every view its
 * scopes allow, through the same routes curl uses:
 *   journal, sources, overview   system/*.rs     (messages about every kind of resource)
 *   register, change, rotate,    system/*.cruds  (a source writes, for the tenant, whatever its
 *   disable a source                             sender's messages map to: payments, responses,
 *                                                claims, credits, organizations; so whoever adds
 *                                                one must hold write on every type already)
 *   deliveries                   system/Subscription.rs; replay: system/Subscription.u
 *   money                        system/<T>.rs for Claim, ClaimResponse, PaymentReconciliation, PatientCredit
 *   waiting payments             system/PaymentReconciliation.rs; apply, discard: .c (or `webhook`)
 */
export const NEEDS = {
  journal: ['system/*.rs'],
  manageSources: ['system/*.rs', 'system/*.cud'],
  deliveries: ['system/Subscription.rs'],
  replay: ['system/Subscription.u'],
  money: ['system/Claim.rs', 'system/ClaimResponse.rs', 'system/PaymentReconciliation.rs', 'system/PatientCredit.rs'],
  waiting: ['system/PaymentReconciliation.rs'],
} as const satisfies Record<string, readonly string[]>;

export type Access = { ok: true; tenant: string; admin: boolean } | { ok: false; status: 403; error: string };

/** The tenant a request may read (`requested`, or the token's), or why not. */
export function tenantAccess(res: Response, requested: string | undefined, needs: readonly string[], alternative?: string): Access {
  const { principal, tenantId } = res.locals as AuthLocals;
  if (principal.scopes.has(ADMIN_SCOPE)) return { ok: true, tenant: requested ?? tenantId, admin: true };
  const enough = needs.every((scope) => principal.scopes.covers(scope)) || (alternative !== undefined && principal.scopes.has(alternative));
  if (!enough) return { ok: false, status: 403, error: `This needs the admin scope, or ${needs.join(' and ')}${alternative ? ` (or ${alternative})` : ''} for the client's own tenant` };
  if (requested !== undefined && requested !== tenantId) {
    return { ok: false, status: 403, error: `A client without the admin scope reads its own tenant (${tenantId}) only` };
  }
  return { ok: true, tenant: tenantId, admin: false };
}

/** Answers a refused access; true when it did. */
export function refused(res: Response, access: Access): access is Extract<Access, { ok: false }> {
  if (access.ok) return false;
  res.status(access.status).json({ error: access.error });
  return true;
}
