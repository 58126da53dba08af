import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import { adminAuth } from '../../auth/index.ts';
import type { AuthDeps } from '../../auth/index.ts';
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
 * Errors are `{error}`, like the rest of /admin.
 */
export function webhookSourceRoutes(deps: AuthDeps): Router {
  const routes = express.Router();
  routes.use(adminAuth(deps));
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
    res.json({ sources: await listSourceViews(deps.db, tenant) });
  });
  routes.get('/:id', async (req, res) => send(res, await getSource(deps.db, req.params.id)));
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
