import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import { NEEDS, operatorAuth, refused, tenantAccess } from '../../auth/index.ts';
import type { Access, AuthDeps } from '../../auth/index.ts';
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
 * Errors are `{error}`, like the rest of /admin. The `admin` scope manages every tenant's sources.
 * A tenant's client manages its own tenant's (auth/tenant-access.ts): system/*.rs lists and reads
 * them; registering, changing, rotating and deleting take system/*.cruds (NEEDS.manageSources).
 * Its `tenant` defaults to its own; naming another is a 403, another tenant's source ids are 404s.
 * Credentials are shown once, in the answer that issues them, and stored hashed or sealed.
 */
export function webhookSourceRoutes(deps: AuthDeps): Router {
  const routes = express.Router();
  routes.use(operatorAuth(deps));
  routes.use(express.json({ limit: '256kb' }));

  /** The access to change sources, or the 403 answered (with the scope it lacks). */
  const mayManage = (res: Response, tenant: string | undefined): Access | undefined => {
    const access = tenantAccess(res, tenant, NEEDS.manageSources);
    if (!access.ok) res.set('WWW-Authenticate', 'Bearer realm="fhir-billing", error="insufficient_scope"');
    return refused(res, access) ? undefined : access;
  };
  /** The source's id when this client may change it: another tenant's is not found, for a tenant's client. */
  const ownSource = async (req: Request, res: Response): Promise<string | undefined> => {
    const access = mayManage(res, undefined);
    if (!access?.ok) return undefined;
    if (!access.admin) {
      const source = await getSource(deps.db, req.params.id as string);
      if (!source.ok || source.value.tenant !== access.tenant) return void res.status(404).json({ error: `Unknown webhook source: ${req.params.id}` });
    }
    return req.params.id as string;
  };
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

  routes.post('/', async (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const access = mayManage(res, typeof body.tenant === 'string' ? body.tenant : undefined);
    if (!access?.ok) return;
    // A tenant's client registers for its own tenant, whether it names it or not.
    send(res, await createSource(deps.db, secrets, access.admin ? req.body : { ...body, tenant: access.tenant }), 201);
  });
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
  routes.patch('/:id', async (req, res) => {
    const id = await ownSource(req, res);
    if (id) send(res, await patchSource(deps.db, secrets, id, req.body));
  });
  routes.delete('/:id', async (req, res) => {
    const id = await ownSource(req, res);
    if (id) send(res, await deleteSourceById(deps.db, id));
  });
  routes.post('/:id/rotate-credentials', async (req, res) => {
    const id = await ownSource(req, res);
    if (id) send(res, await rotateCredentials(deps.db, secrets, id));
  });

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
