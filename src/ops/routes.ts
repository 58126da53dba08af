import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import { z } from 'zod';
import { operatorAuth } from '../auth/index.ts';
import type { AuthDeps } from '../auth/index.ts';
import { NEEDS, refused, tenantAccess } from '../auth/index.ts';
import type { Database } from '../db/index.ts';
import { databaseUnavailable } from '../db/unavailable.ts';
import { patientBalance } from '../billing/index.ts';
import { FULL_ACCESS } from '../fhir/access.ts';
import { PostgresRepository } from '../fhir/repository.ts';
import { overview, patientPayments } from './money.ts';
import { fullClaimTimeline } from './timeline.ts';
import { deliveryHealth, getInboundEvent, listInboundEvents, listNotifications, listSubscriptions, replayFrom, subscriptionExists } from './store.ts';

/**
 * Operator read APIs, the console's and the CLI's; errors are `{error}` as in the rest of /admin.
 * The `admin` scope reads any tenant (`tenant`, default the token's); a tenant's client its own,
 * with the FHIR scopes each view needs (auth/tenant-access.ts). Lists page with `before` (the `next` of the
 * previous page) or `offset`, and `limit` (1..200, default 50).
 *   GET  /admin/inbound-events?tenant=&source=&sourceId=&status=&since=&until=&before=&limit=
 *   GET  /admin/inbound-events/:id?tenant=
 *   GET  /admin/subscriptions?tenant=
 *   GET  /admin/subscriptions/:id/notifications?tenant=&status=&before=&limit=
 *   GET  /admin/subscriptions/:id/health?tenant=&hours=
 *   POST /admin/subscriptions/:id/replay {tenant?, fromEventNumber}
 *   GET  /admin/patient-payments?tenant=&patient=&claim=&offset=&limit=
 *   GET  /admin/patient-balance?tenant=&patient=   responsibility, paid, open per lifecycle; credits
 *   GET  /admin/claims/:id/timeline?tenant=           {claimId, currency, entries}: ClaimResponses (with the responsibility each states) and money
 *   GET  /admin/overview?tenant=&hours=
 */
const Tenant = z.string().regex(/^[A-Za-z0-9._-]{1,128}$/).optional();
const Limit = z.coerce.number().int().min(1).max(200).default(50);
const Cursor = z.string().regex(/^\d{1,18}$/, 'a number from the previous page').optional();
const Id = z.string().regex(/^[A-Za-z0-9\-.]{1,64}$/);
const Instant = z.iso.datetime({ offset: true }).optional();
const Hours = z.coerce.number().int().min(1).max(24 * 31).default(24);

const EventsQuery = z.object({
  tenant: Tenant,
  source: z.string().min(1).max(64).optional(),
  sourceId: z.string().min(1).max(64).optional(),
  status: z.enum(['processed', 'duplicate', 'unmatched', 'refused', 'failed']).optional(),
  since: Instant,
  until: Instant,
  before: Cursor,
  limit: Limit,
});
const TenantQuery = z.object({ tenant: Tenant });
const NotificationsQuery = z.object({ tenant: Tenant, status: z.enum(['pending', 'delivered', 'dead']).optional(), before: Cursor, limit: Limit });
const HealthQuery = z.object({ tenant: Tenant, hours: Hours });
const ReplayBody = z.object({ tenant: Tenant, fromEventNumber: z.number().int().min(1) }).strict();
const PaymentsQuery = z.object({
  tenant: Tenant,
  patient: z.string().regex(/^Patient\/[A-Za-z0-9\-.]{1,64}$/, 'Patient/<id>').optional(),
  claim: Id.optional(),
  offset: z.coerce.number().int().min(0).max(100_000).default(0),
  limit: Limit,
});

const BalanceQuery = z.object({ tenant: Tenant, patient: z.string().regex(/^Patient\/[A-Za-z0-9\-.]{1,64}$/, 'Patient/<id>') });

type Parsed<T> = { ok: true; value: T & { tenant: string } } | { ok: false };

export function opsRoutes(deps: AuthDeps & { db: Database }): Router {
  const routes = express.Router();
  // Only these paths: the rest of /admin passes by untouched (one token check per request).
  routes.use(['/inbound-events', '/subscriptions', '/patient-payments', '/patient-balance', '/claims', '/overview'], operatorAuth(deps), express.json({ limit: '16kb' }));

  /** Parses query or body and settles the tenant (`needs`: the scopes a tenant client needs); answers 400 or 403 itself. */
  function parse<T extends { tenant?: string }>(schema: z.ZodType<T>, input: unknown, res: Response, needs: readonly string[]): Parsed<T> {
    const r = schema.safeParse(Object.fromEntries(Object.entries((input as object) ?? {}).map(([k, v]) => [k, v === '' ? undefined : v])));
    if (!r.success) {
      res.status(400).json({ error: `Invalid request: ${r.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}` });
      return { ok: false };
    }
    const access = tenantAccess(res, r.data.tenant, needs);
    if (refused(res, access)) return { ok: false };
    return { ok: true, value: { ...r.data, tenant: access.tenant } };
  }
  const id = (req: Request, res: Response): string | undefined => {
    const r = Id.safeParse(req.params.id);
    if (!r.success) res.status(404).json({ error: `Not found: ${String(req.params.id).slice(0, 64)}` });
    return r.success ? r.data : undefined;
  };

  /** Reads of the tenant's FHIR data for a view whose scopes were checked. */
  const repoOf = (tenantId: string): PostgresRepository => new PostgresRepository(deps.db, { tenantId, access: FULL_ACCESS, baseUrl: '' });

  routes.get('/inbound-events', async (req, res) => {
    const q = parse(EventsQuery, req.query, res, NEEDS.journal);
    if (!q.ok) return;
    const { tenant, ...filter } = q.value;
    res.json(await listInboundEvents(deps.db, { tenantId: tenant, ...filter }));
  });
  routes.get('/inbound-events/:id', async (req, res) => {
    const q = parse(TenantQuery, req.query, res, NEEDS.journal);
    const eventId = /^\d{1,18}$/.test(req.params.id) ? req.params.id : undefined;
    if (!q.ok) return;
    const event = eventId && (await getInboundEvent(deps.db, q.value.tenant, eventId));
    if (!event) return void res.status(404).json({ error: `Inbound event ${req.params.id.slice(0, 64)} not found` });
    res.json(event);
  });

  routes.get('/subscriptions', async (req, res) => {
    const q = parse(TenantQuery, req.query, res, NEEDS.deliveries);
    if (q.ok) res.json({ subscriptions: await listSubscriptions(deps.db, q.value.tenant) });
  });
  /** The subscription's id, once it is known to be the tenant's (404 otherwise). */
  async function subscription(req: Request, res: Response, tenant: string): Promise<string | undefined> {
    const sid = id(req, res);
    if (sid === undefined) return undefined;
    if (await subscriptionExists(deps.db, tenant, sid)) return sid;
    res.status(404).json({ error: `Subscription ${sid} not found` });
    return undefined;
  }
  routes.get('/subscriptions/:id/notifications', async (req, res) => {
    const q = parse(NotificationsQuery, req.query, res, NEEDS.deliveries);
    if (!q.ok) return;
    const sid = await subscription(req, res, q.value.tenant);
    if (sid) res.json(await listNotifications(deps.db, { tenantId: q.value.tenant, subscriptionId: sid, status: q.value.status, before: q.value.before, limit: q.value.limit }));
  });
  routes.get('/subscriptions/:id/health', async (req, res) => {
    const q = parse(HealthQuery, req.query, res, NEEDS.deliveries);
    if (!q.ok) return;
    const sid = await subscription(req, res, q.value.tenant);
    if (sid) res.json({ hours: q.value.hours, buckets: await deliveryHealth(deps.db, q.value.tenant, sid, q.value.hours) });
  });
  routes.post('/subscriptions/:id/replay', async (req, res) => {
    const q = parse(ReplayBody, req.body, res, NEEDS.replay);
    if (!q.ok) return;
    const sid = await subscription(req, res, q.value.tenant);
    if (!sid) return;
    const requeued = await deps.db.transaction((tx) => replayFrom(tx, q.value.tenant, sid, q.value.fromEventNumber));
    res.json({ subscriptionId: sid, fromEventNumber: q.value.fromEventNumber, requeued });
  });

  routes.get('/patient-payments', async (req, res) => {
    const q = parse(PaymentsQuery, req.query, res, NEEDS.money);
    if (!q.ok) return;
    res.json(await patientPayments(deps.db, { tenantId: q.value.tenant, patient: q.value.patient, claimId: q.value.claim, offset: q.value.offset, limit: q.value.limit }));
  });
  routes.get('/patient-balance', async (req, res) => {
    const q = parse(BalanceQuery, req.query, res, NEEDS.money);
    if (!q.ok) return;
    res.json(await patientBalance(repoOf(q.value.tenant), q.value.patient));
  });
  routes.get('/claims/:id/timeline', async (req, res) => {
    const q = parse(TenantQuery, req.query, res, NEEDS.money);
    const cid = q.ok ? id(req, res) : undefined;
    if (q.ok && cid) res.json({ claimId: cid, ...(await fullClaimTimeline(repoOf(q.value.tenant), cid)) });
  });
  routes.get('/overview', async (req, res) => {
    const q = parse(HealthQuery, req.query, res, NEEDS.journal);
    if (q.ok) res.json(await overview(deps.db, q.value.tenant, q.value.hours));
  });

  routes.use((err: { status?: number; type?: string }, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    const unavailable = databaseUnavailable(err);
    if (unavailable) res.status(503).set('Retry-After', String(unavailable.retryAfterSeconds)).json({ error: unavailable.message });
    else if (err.type === 'entity.parse.failed') res.status(400).json({ error: 'Invalid request body: malformed JSON' });
    else if (err.status && err.status >= 400 && err.status < 500) res.status(err.status).json({ error: 'Invalid request' });
    else {
      req.log?.error({ err }, 'unhandled error in the operator API');
      res.status(500).json({ error: 'Internal server error' });
    }
  });
  return routes;
}
