import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import { z } from 'zod';
import { adminAuth } from '../auth/index.ts';
import type { AuthSettings } from '../auth/index.ts';
import type { Database } from '../db/index.ts';
import { databaseUnavailable } from '../db/unavailable.ts';
import { SUPPORTED_RESOURCE_TYPES } from '../profiles/index.ts';
import { DEFAULT_REINDEX_BATCH, reindex } from './reindex.ts';

/**
 * `POST /admin/reindex {type?, tenant?, after?, max?, batch?}` (admin scope): reindex.ts while the
 * server runs, which is the only way on the embedded database (one process holds it, so the
 * CLI's `fhir-billing reindex` is refused then). One request does at most `max` resources
 * (default 10,000) and answers `{reindexed, last, done}`; the caller sends `after: last` until
 * `done`. Without `tenant`, every tenant (the admin scope spans them). Errors are `{error}`.
 */
export const REINDEX_PATH = '/admin/reindex';

const Body = z
  .object({
    tenant: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/).optional(),
    type: z.enum(SUPPORTED_RESOURCE_TYPES as [string, ...string[]]).optional(),
    after: z.string().regex(/^[^/]{1,128}\/[A-Za-z]{1,64}\/[A-Za-z0-9\-.]{1,64}$/, 'TENANT/Type/id, as a previous answer gave').optional(),
    max: z.number().int().min(1).max(100_000).default(10_000),
    batch: z.number().int().min(1).max(10_000).default(DEFAULT_REINDEX_BATCH),
  })
  .strict();

export function reindexRoutes(deps: { db: Database; settings: AuthSettings; baseUrl?: string }): Router {
  const routes = express.Router();
  routes.use(REINDEX_PATH, adminAuth(deps), express.json({ limit: '16kb' }));
  routes.post(REINDEX_PATH, async (req, res) => {
    const body = Body.safeParse(req.body ?? {});
    if (!body.success) return void res.status(400).json({ error: `Invalid body: ${body.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}` });
    const { tenant, type, after, max, batch } = body.data;
    const [tenantId, resourceType, id] = after?.split('/') ?? [];
    // The bases /fhir itself treats as local (routes.ts): the public one and the request's.
    const origin = `${req.protocol}://${req.get('host')}`;
    const localBases = [...new Set([`${deps.baseUrl ?? origin}/fhir`, `${origin}/fhir`])];
    const result = await reindex(deps.db, {
      tenantId: tenant,
      resourceType: type,
      after: after ? { tenantId, resourceType, id } : undefined,
      limit: max,
      batchSize: batch,
      localBases,
    });
    const last = result.last && `${result.last.tenantId}/${result.last.resourceType}/${result.last.id}`;
    res.json({ reindexed: result.reindexed, ...(last && { last }), done: result.done });
  });
  routes.use(REINDEX_PATH, (err: { status?: number; type?: string }, req: Request, res: Response, _next: NextFunction) => {
    const unavailable = databaseUnavailable(err);
    if (unavailable) res.status(503).set('Retry-After', String(unavailable.retryAfterSeconds)).json({ error: unavailable.message });
    else if (err.type === 'entity.parse.failed') res.status(400).json({ error: 'Invalid request body: malformed JSON' });
    else if (err.status && err.status >= 400 && err.status < 500) res.status(err.status).json({ error: 'Invalid request' });
    else {
      req.log?.error({ err }, 'reindex route failed');
      res.status(500).json({ error: 'Internal server error' });
    }
  });
  return routes;
}
