import type { Router } from 'express';
import type { AuthDeps } from '../auth/index.ts';
import type { Database } from '../db/index.ts';
import type { ChangeObserver } from '../fhir/change-observer.ts';

/**
 * A sender of webhooks (a payment processor, a payer, a health fund): one folder under inbound/
 * that authenticates the sender its way, parses its body with its zod schema, maps it to a billing
 * command and answers in its shape. app.ts mounts every sender in SENDERS (inbound/index.ts); the
 * OpenAPI document at /api/openapi.json is assembled from their `openapi()`.
 */
export interface Sender {
  /** The journal's `source` (e.g. `cair`). */
  name: string;
  router(deps: InboundDeps): Router;
  /** The sender's paths and schemas, from its zod schemas. */
  openapi(): OpenApiPart;
}

export interface InboundDeps {
  db: Database;
  /** For each sender's authentication (webhookAuth for the Cair JWT). */
  auth: AuthDeps;
  /** The same observer as /fhir's (Subscriptions), so billing's writes notify subscribers. */
  observer?: ChangeObserver;
  /** Public base URL; absent: taken from each request's host. */
  baseUrl?: string;
}

export interface OpenApiPart {
  paths: Record<string, unknown>;
  schemas: Record<string, unknown>;
}
