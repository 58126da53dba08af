import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import { z } from 'zod';
import { NEEDS, listTenants, operatorAuth, refused, tenantAccess } from '../auth/index.ts';
import { applyUnmatchedPayment, discardUnmatchedPayment, listUnmatchedPayments, listWaitingClaimPayments, toJsonNumber, unmatchedPaymentTenant } from '../billing/index.ts';
import type { Refusal } from '../billing/index.ts';
import { FULL_ACCESS } from '../fhir/access.ts';
import { PostgresRepository } from '../fhir/repository.ts';
import type { InboundDeps } from './sender.ts';

export const UNMATCHED_PATH = '/admin/unmatched-payments';

const ListQuery = z.object({ tenant: z.string().min(1).max(128).optional(), source: z.string().min(1).max(128).optional() });
const DiscardBody = z.object({ reason: z.string().trim().min(1, 'reason is required').max(1000) }).strict();
const Id = z.string().regex(/^[A-Za-z0-9-]{1,64}$/);

/**
 * The operator's view of payments that wait for their claim (billing/unmatched.ts): the `admin`
 * scope for every tenant, or a tenant's client for its own (system/PaymentReconciliation.rs to
 * list; .c or `webhook` to apply or discard; auth/tenant-access.ts):
 *   GET  /admin/unmatched-payments?tenant=&source=   what waits, oldest first, with its age; and the
 *                                                    payers' claim payments waiting for their Claim
 *   POST /admin/unmatched-payments/:id/apply          apply it, now that its claim exists
 *   POST /admin/unmatched-payments/:id/discard {reason}
 * Errors are `{error}` as in the rest of /admin: 404 unknown id or still no claim, 409 already
 * applied or discarded, 400 a bad query or body.
 */
export function unmatchedPaymentRoutes(deps: InboundDeps): Router {
  const routes = express.Router();
  routes.use(UNMATCHED_PATH, operatorAuth(deps.auth), express.json({ limit: '16kb' }));

  routes.get(UNMATCHED_PATH, async (req: Request, res: Response) => {
    const query = ListQuery.safeParse(emptyToUndefined(req.query));
    if (!query.success) return void res.status(400).json({ error: `Invalid query: ${query.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}` });
    const access = tenantAccess(res, query.data.tenant, NEEDS.waiting);
    if (refused(res, access)) return;
    // An operator naming no tenant sees every tenant's.
    const tenantId = access.admin ? query.data.tenant : access.tenant;
    const waiting = await listUnmatchedPayments(deps.db, { tenantId, source: query.data.source });
    // Payer claim payments (an 835's CLPs) that wait for their Claim apply by themselves when it is written.
    const claims = query.data.source === undefined || query.data.source === 'x12-835' ? await listWaitingClaimPayments(deps.db, tenantId) : [];
    // Each amount with its tenant's book currency (what the payment was taken in: billing refuses any other).
    const currency = new Map((await listTenants(deps.db)).map((tenant) => [tenant.id, tenant.currency]));
    res.json({
      unmatchedPayments: waiting.map((u) => ({ ...u, amount: toJsonNumber(u.amount), currency: currency.get(u.tenant) })),
      waitingClaimPayments: claims.map((c) => ({ ...c, currency: currency.get(c.tenant) })),
    });
  });

  routes.post(`${UNMATCHED_PATH}/:id/apply`, async (req: Request, res: Response) => {
    const repo = await repoFor(req, res);
    if (!repo) return;
    const result = await applyUnmatchedPayment(repo, req.params.id as string);
    if (!result.ok) return void refusal(res, result);
    const o = result.value;
    res.json({
      unmatchedPaymentId: o.unmatchedPaymentId,
      status: 'applied',
      paymentId: o.paymentId,
      claimId: o.claimId,
      claimLifecycleId: o.claimLifecycleId,
      amountSetOnClaim: toJsonNumber(o.amountSetOnClaim),
      excessAmount: toJsonNumber(o.excessAmount),
      paymentReconciliationId: o.paymentReconciliationId,
      ...(o.patientCreditId && { patientCreditId: o.patientCreditId }),
    });
  });

  routes.post(`${UNMATCHED_PATH}/:id/discard`, async (req: Request, res: Response) => {
    const body = DiscardBody.safeParse(req.body ?? {});
    if (!body.success) return void res.status(400).json({ error: `Invalid body: ${body.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}` });
    const repo = await repoFor(req, res);
    if (!repo) return;
    const result = await discardUnmatchedPayment(repo, req.params.id as string, body.data.reason);
    if (!result.ok) return void refusal(res, result);
    res.json({ unmatchedPaymentId: result.value.unmatchedPaymentId, status: 'discarded', reason: result.value.reason });
  });

  routes.use(UNMATCHED_PATH, (err: { status?: number; type?: string }, req: Request, res: Response, _next: NextFunction) => {
    if (err.type === 'entity.parse.failed') res.status(400).json({ error: 'Invalid request body: malformed JSON' });
    else if (err.status && err.status >= 400 && err.status < 500) res.status(err.status).json({ error: 'Invalid request' });
    else {
      req.log?.error({ err }, 'unmatched payments route failed');
      res.status(500).json({ error: 'Internal server error' });
    }
  });

  /**
   * The payment's tenant (the operator names only its id); 404 when no tenant holds it, or when a
   * tenant's client names another tenant's (it learns nothing of what it may not read).
   */
  async function repoFor(req: Request, res: Response): Promise<PostgresRepository | undefined> {
    const id = Id.safeParse(req.params.id);
    const access = tenantAccess(res, undefined, ['system/PaymentReconciliation.c'], 'webhook');
    if (refused(res, access)) return undefined;
    const tenantId = id.success ? await unmatchedPaymentTenant(deps.db, id.data) : undefined;
    if (!tenantId || (!access.admin && tenantId !== access.tenant)) {
      res.status(404).json({ error: `Unmatched payment ${String(req.params.id)} not found` });
      return undefined;
    }
    return new PostgresRepository(deps.db, { tenantId, access: FULL_ACCESS, baseUrl: deps.baseUrl ? `${deps.baseUrl}/fhir` : '' }, { observer: deps.observer });
  }
  return routes;
}

function refusal(res: Response, r: Refusal): void {
  res.status(r.code === 'not-found' ? 404 : r.code === 'conflict' ? 409 : 400).json({ error: r.message });
}

/** `?tenant=` (empty) means no filter. */
function emptyToUndefined(query: Request['query']): Record<string, unknown> {
  return Object.fromEntries(Object.entries(query).map(([k, v]) => [k, v === '' ? undefined : v]));
}
