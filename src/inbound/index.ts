// Inbound webhooks: one folder per sender (cair/, instamed/, curacel/ with the claims-vetting and
// pre-authorization kinds, tyro/, x12-835/ for payer remittances), the webhook-source registry (sources/), the shared event journal, body
// parsing by content type, and the OpenAPI document of /api.
import express from 'express';
import type { Router } from 'express';
import { cair } from './cair/index.ts';
import { claimsVetting, preAuthorizationDecisions } from './curacel/index.ts';
import { instamed } from './instamed/index.ts';
import { tyro } from './tyro/index.ts';
import { openApiDocument } from './openapi.ts';
import { x12835 } from './x12-835/index.ts';
import type { InboundDeps, Sender } from './sender.ts';

export type { InboundDeps, Sender } from './sender.ts';
export { listEvents } from './journal.ts';
export { webhookSourceRoutes } from './sources/admin-routes.ts';
export type { SecretSettings } from './sources/registry.ts';
export { SOURCE_KINDS, createSource, deleteSourceById, getSource, listSourceViews, patchSource, rotateCredentials } from './sources/registry.ts';

/** Every sender we take webhooks from. A new sender is one folder and one entry here. */
export const SENDERS: readonly Sender[] = [cair, instamed, x12835, claimsVetting, preAuthorizationDecisions, tyro];

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
