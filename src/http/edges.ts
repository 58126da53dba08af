import express from 'express';
import type { ErrorRequestHandler, Express, NextFunction, Request, RequestHandler, Response } from 'express';
import { guardParsedBody, inspectQuery, jsonBody, unsafeTextReason } from './json-guard.ts';

/**
 * The edges of the app that belong to no single router: bodies of the token endpoints and /admin
 * read and checked before their routers (which would otherwise store a NUL or walk a body 20,000
 * levels deep), and JSON, never Express's HTML page, for an unknown route or a failure that no
 * router answered. Each answer is in the shape of the API it falls under (/fhir answers for itself).
 */

type BodyError = { status?: number; type?: string; message?: string };
type Render = (err: BodyError) => unknown;

const SMALL = { maxDepth: 16, maxNodes: 10_000 };

/**
 * Mounts, before the routers, the same parsers they use (same types and byte limits; theirs then
 * skip an already parsed body) followed by the structural guard, with each API's error shape.
 */
export function guardAuthBodies(app: Express, oauthTokenPath: string): void {
  const tokenShape: Render = (err) => (err.type === 'entity.unsafe' ? { error: 'Invalid request body', details: [{ path: [], message: err.message }] } : { error: 'Invalid request body' });
  const oauthShape: Render = (err) => ({ error: 'invalid_request', error_description: err.type === 'entity.unsafe' ? err.message : 'Unreadable request body' });
  const adminShape: Render = (err) => ({ error: err.type === 'entity.parse.failed' ? 'Invalid request body: malformed JSON' : `Invalid request body: ${err.message ?? 'unreadable'}` });

  app.post('/api/token', ...jsonBody({ type: 'application/json', limit: '16kb', limits: SMALL }), bodyErrors(tokenShape));
  app.post(oauthTokenPath, express.urlencoded({ extended: false, limit: '64kb' }), guardParsedBody(SMALL), bodyErrors(oauthShape));
  app.use('/admin', refuseUnsafeUrl((message) => ({ error: message })), ...jsonBody({ type: 'application/json', limit: '256kb', limits: SMALL }), bodyErrors(adminShape));
}

/** A 4xx from a body parser or the guard, in `render`'s shape; anything else goes on. */
function bodyErrors(render: Render): ErrorRequestHandler {
  return (err: BodyError, _req: Request, res: Response, next: NextFunction) => {
    if (err.status !== undefined && err.status >= 400 && err.status < 500) {
      res.status(err.status).json(render(err));
    } else {
      next(err);
    }
  };
}

/** A NUL or lone surrogate in the query or the decoded path (ids, tenants) is refused before any lookup. */
function refuseUnsafeUrl(render: (message: string) => unknown): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    let path: string;
    try {
      path = decodeURIComponent(req.path);
    } catch {
      res.status(400).json(render('The request path is not valid percent-encoded UTF-8'));
      return;
    }
    const reason = inspectQuery(req.query as Record<string, unknown>) ?? (unsafeTextReason(path) && `The request path ${unsafeTextReason(path)}`);
    if (reason) {
      res.status(400).json(render(reason));
      return;
    }
    next();
  };
}

/** Last in the app: JSON for what no router took, and for an error no router answered. */
export function jsonFallbacks(app: Express): void {
  app.use((req: Request, res: Response) => {
    res.status(404).json({ error: `Not found: ${req.method} ${req.path.slice(0, 200)}` });
  });
  app.use((err: BodyError, req: Request, res: Response, _next: NextFunction) => {
    if (res.headersSent) {
      res.end();
      return;
    }
    if (err.status !== undefined && err.status >= 400 && err.status < 500) {
      res.status(err.status).json({ error: err.type === 'entity.unsafe' ? err.message : 'Invalid request' });
      return;
    }
    req.log?.error({ err }, 'unhandled error');
    res.status(500).json({ error: 'Internal server error' });
  });
}
