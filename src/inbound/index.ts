// Inbound webhooks: one folder per sender (cair/, instamed/, tyro/, and next claims-vetting/,
// pre-authorization/), the webhook-source registry (sources/), the shared event journal, body
// parsing by content type, and the OpenAPI document of /api.
import express from 'express';
import type { Router } from 'express';
import { cair } from './cair/index.ts';
import { instamed } from './instamed/index.ts';
import { tyro } from './tyro/index.ts';
import { openApiDocument } from './openapi.ts';
import type { InboundDeps, Sender } from './sender.ts';

export type { InboundDeps, Sender } from './sender.ts';
export { listEvents } from './journal.ts';
export { webhookSourceRoutes } from './sources/admin-routes.ts';
export type { SecretSettings } from './sources/registry.ts';
export { SOURCE_KINDS, createSource, deleteSourceById, getSource, listSourceViews, patchSource, rotateCredentials } from './sources/registry.ts';

/** Every sender we take webhooks from. A new sender is one folder and one entry here. */
export const SENDERS: readonly Sender[] = [cair, instamed, tyro];

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
