import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import { ADMIN_SCOPE, NEEDS, operatorAuth, refused, tenantAccess } from '../../auth/index.ts';
import type { AuthDeps, AuthLocals } from '../../auth/index.ts';
import { createSource, deleteSourceById, getSource, listSourceViews, patchSource, rotateCredentials } from './registry.ts';
import type { RegistryResult } from './registry.ts';

/**
 * /admin/webhook-sources (the `admin` scope), mounted by app.ts before auth's /admin routes:
 *   POST   /admin/webhook-sources {tenant, kind, name, ...options} → 201 {id, kind, tenant, url, ..., credentials?}
 *   GET    /admin/webhook-sources?tenant=
 *   GET    /admin/webhook-sources/:id
 *   PATCH  /admin/webhook-sources/:id {name?, enabled?, allowedIps?, claimIdentifierSystem?, ...options}
 *   DELETE /admin/webhook-sources/:id
 *   POST   /admin/webhook-sources/:id/rotate-credentials → {..., credentials}
 * Errors are `{error}`, like the rest of /admin. Registering and changing sources takes the
 * `admin` scope; a tenant's client with system/*.rs may list and read its own tenant's
 * (auth/tenant-access.ts), never their credentials (they are shown once, to the operator).
 */
export function webhookSourceRoutes(deps: AuthDeps): Router {
  const routes = express.Router();
  routes.use(operatorAuth(deps));
  routes.use((req, res, next) => {
    if (req.method === 'GET' || (res.locals as AuthLocals).principal.scopes.has(ADMIN_SCOPE)) return next();
    res.set('WWW-Authenticate', 'Bearer realm="fhir-billing", error="insufficient_scope"');
    res.status(403).json({ error: 'Registering or changing a webhook source needs the admin scope' });
  });
  routes.use(express.json({ limit: '256kb' }));
  const secrets = deps.settings;

  const send = <T extends object>(res: Response, result: RegistryResult<T>, status = 200): void => {
    if (!result.ok) {
      res.status(result.status).json({ error: result.message });
      return;
    }
    // Credentials are shown once: never let anything between us and the operator keep them.
    if ('credentials' in result.value) res.set('Cache-Control', 'no-store');
    res.status(status).json(result.value);
  };

  routes.post('/', async (req, res) => send(res, await createSource(deps.db, secrets, req.body), 201));
  routes.get('/', async (req, res) => {
    const tenant = typeof req.query.tenant === 'string' && req.query.tenant !== '' ? req.query.tenant : undefined;
    const access = tenantAccess(res, tenant, NEEDS.journal);
    if (refused(res, access)) return;
    res.json({ sources: await listSourceViews(deps.db, access.admin ? tenant : access.tenant) });
  });
  routes.get('/:id', async (req, res) => {
    const access = tenantAccess(res, undefined, NEEDS.journal);
    if (refused(res, access)) return;
    const source = await getSource(deps.db, req.params.id);
    // Another tenant's source is not found, for a tenant's client.
    if (source.ok && !access.admin && source.value.tenant !== access.tenant) return void res.status(404).json({ error: `Unknown webhook source: ${req.params.id}` });
    send(res, source);
  });
  routes.patch('/:id', async (req, res) => send(res, await patchSource(deps.db, secrets, req.params.id, req.body)));
  routes.delete('/:id', async (req, res) => send(res, await deleteSourceById(deps.db, req.params.id)));
  routes.post('/:id/rotate-credentials', async (req, res) => send(res, await rotateCredentials(deps.db, secrets, req.params.id)));

  routes.use((_req, res) => {
    res.status(404).json({ error: 'Not found' });
  });
  routes.use((err: { status?: number; type?: string }, req: Request, res: Response, _next: NextFunction) => {
    if (err.type === 'entity.parse.failed') {
      res.status(400).json({ error: 'Invalid request body: malformed JSON' });
    } else if (err.status && err.status >= 400 && err.status < 500) {
      res.status(err.status).json({ error: 'Invalid request' });
    } else {
      req.log?.error({ err }, 'unhandled error under /admin/webhook-sources');
      res.status(500).json({ error: 'Internal server error' });
    }
  });
  return routes;
}
