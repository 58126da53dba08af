import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import type { Database } from '../db/index.ts';
import { databaseUnavailable } from '../db/unavailable.ts';
import { changeBookCurrency } from '../billing/index.ts';
import type { RefusalCode } from '../billing/index.ts';
import { createClient, createTenant, deleteClient, listClients, listTenants, parseTenantChange, rotateSecret } from './admin.ts';
import { adminAuth } from './middleware.ts';
import type { AuthDeps } from './middleware.ts';
import { refuse } from './result.ts';
import type { ErrorCode, Result } from './result.ts';

/**
 * The admin API, for clients holding the `admin` scope (an operator's scope: it spans tenants):
 *   POST   /admin/tenants {id, name, currency?}      (currency: the book currency, ISO 4217, default USD)
 *   GET    /admin/tenants
 *   PATCH  /admin/tenants/:id {currency}          (409 once money is booked for the tenant)
 *   POST   /admin/clients {tenant, name, scopes?, jwksUrl? | jwks?} → {clientId, clientSecret, tenant, scopes}
 *   GET    /admin/clients?tenant=      (an unknown tenant is a 404)
 *   DELETE /admin/clients/:id
 *   POST   /admin/clients/:id/rotate-secret → {clientId, clientSecret, tenant, scopes}
 * Errors are `{error}`.
 */
/** A billing refusal (the book currency's change) as this API answers it. */
const BILLING_REFUSALS: Record<RefusalCode, { status: number; code: ErrorCode }> = {
  'not-found': { status: 404, code: 'not_found' },
  conflict: { status: 409, code: 'conflict' },
  invalid: { status: 400, code: 'invalid_request' },
};

export function adminRoutes(deps: AuthDeps & { db: Database }): Router {
  const routes = express.Router();
  routes.use(adminAuth(deps));
  routes.use(express.json({ limit: '256kb' }));

  const send = <T>(res: Response, result: Result<T>, status = 200): void => {
    if (!result.ok) res.status(result.status).json({ error: result.message });
    else if (result.value === undefined) res.status(204).end();
    else res.status(status).json(result.value);
  };

  routes.post('/tenants', async (req, res) => send(res, await createTenant(deps.db, req.body), 201));
  routes.patch('/tenants/:id', async (req, res) => {
    const change = parseTenantChange(req.body);
    if (!change.ok) return send(res, change);
    const changed = await changeBookCurrency(deps.db, req.params.id, change.value.currency);
    send(res, changed.ok ? changed : refuse(BILLING_REFUSALS[changed.code].status, BILLING_REFUSALS[changed.code].code, changed.message));
  });
  routes.get('/tenants', async (_req, res) => {
    res.json({ tenants: await listTenants(deps.db) });
  });
  routes.post('/clients', async (req, res) => {
    const result = await createClient(deps.db, deps.settings, req.body);
    if (result.ok) res.set('Cache-Control', 'no-store');
    send(res, result, 201);
  });
  routes.get('/clients', async (req, res) => {
    const tenant = typeof req.query.tenant === 'string' && req.query.tenant !== '' ? req.query.tenant : undefined;
    const result = await listClients(deps.db, tenant);
    send(res, result.ok ? { ok: true, value: { clients: result.value } } : result);
  });
  routes.delete('/clients/:id', async (req, res) => send(res, await deleteClient(deps.db, req.params.id)));
  routes.post('/clients/:id/rotate-secret', async (req, res) => {
    const result = await rotateSecret(deps.db, deps.settings, req.params.id);
    if (result.ok) res.set('Cache-Control', 'no-store');
    send(res, result);
  });

  routes.use((_req, res) => {
    res.status(404).json({ error: 'Not found' });
  });
  routes.use((err: { status?: number; type?: string }, req: Request, res: Response, _next: NextFunction) => {
    const unavailable = databaseUnavailable(err);
    if (unavailable) {
      res.status(503).set('Retry-After', String(unavailable.retryAfterSeconds)).json({ error: unavailable.message });
    } else if (err.type === 'entity.parse.failed') {
      res.status(400).json({ error: 'Invalid request body: malformed JSON' });
    } else if (err.status && err.status >= 400 && err.status < 500) {
      res.status(err.status).json({ error: 'Invalid request' });
    } else {
      req.log?.error({ err }, 'unhandled error under /admin');
      res.status(500).json({ error: 'Internal server error' });
    }
  });
  return routes;
}
