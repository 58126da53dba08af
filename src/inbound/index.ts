// Inbound webhooks: one folder per sender (cair/, and next instamed/, tyro/, claims-vetting/,
// pre-authorization/), the shared event journal, and the OpenAPI document of /api.
import express from 'express';
import type { Router } from 'express';
import { cair } from './cair/index.ts';
import { openApiDocument } from './openapi.ts';
import type { InboundDeps, Sender } from './sender.ts';

export type { InboundDeps, Sender } from './sender.ts';
export { listEvents } from './journal.ts';

/** Every sender we take webhooks from. A new sender is one folder and one entry here. */
export const SENDERS: readonly Sender[] = [cair];

/** Every sender's routes, and GET /api/openapi.json (no token needed). */
export function inboundRoutes(deps: InboundDeps & { version: string }): Router {
  const routes = express.Router();
  const document = openApiDocument(SENDERS, deps.version);
  routes.get('/api/openapi.json', (_req, res) => {
    res.json(document);
  });
  for (const sender of SENDERS) routes.use(sender.router(deps));
  return routes;
}
