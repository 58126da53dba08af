import { randomUUID } from 'node:crypto';
import express from 'express';
import type { Express } from 'express';
import { pinoHttp } from 'pino-http';
import { adminRoutes, authSettings, createFailureLimiter, DEFAULT_ISSUER, fhirAuth, OAUTH_TOKEN_PATH, tokenRoutes } from './auth/index.ts';
import type { AuthSettings } from './auth/index.ts';
import type { Database } from './db/index.ts';
import { fhirRoutes } from './fhir/routes.ts';
import { guardAuthBodies, jsonFallbacks } from './http/edges.ts';
import type { Logger } from './logger.ts';
import { loadProfiles } from './profiles/index.ts';
import { SUBSCRIPTION_TOPICS, addSubscriptionOperations, concealAnswer, subscriptionObserver } from './subscriptions/index.ts';
import { addBillingOperations, billingObserver } from './billing/index.ts';
import { composeObservers } from './fhir/change-observer.ts';
import type { ChangeObserver } from './fhir/change-observer.ts';
import { writeLog } from './fhir/write-log.ts';
import { inboundRoutes, webhookSourceRoutes } from './inbound/index.ts';
import { unmatchedPaymentRoutes } from './inbound/unmatched-payments.ts';
import { addressIn, parseCidrs } from './net/addresses.ts';
import { consoleRoutes } from './console/routes.ts';
import { opsRoutes } from './ops/routes.ts';
import { reindexRoutes } from './fhir/reindex-routes.ts';

export interface AppOptions {
  db: Database;
  logger: Logger;
  baseUrl?: string;
  /** May Subscription endpoints be on private networks (loopback, RFC 1918, link-local)? */
  allowPrivateNetworks?: boolean;
  /** Token issuer, lifetime, hashing cost, failure limits (defaults: auth/settings.ts). */
  auth?: Partial<AuthSettings>;
  /**
   * TRUSTED_PROXIES: the CIDRs whose X-Forwarded-For we believe (default: loopback). The one rule
   * for a caller's address (req.ip) everywhere: the token endpoint's limits, sources' allowedIps.
   */
  trustedProxies?: readonly string[];
  /** Serve the operations console at /console (default true; CONSOLE_ENABLED). */
  console?: boolean;
}

export const DEFAULT_TRUSTED_PROXIES: readonly string[] = ['127.0.0.0/8', '::1/128'];

export const VERSION = '0.1.0';

/** Assembles the HTTP application from the routers of each concern. */
export function createApp(options: AppOptions): Express {
  loadProfiles();
  const app = express();
  app.disable('x-powered-by');
  // ETags are FHIR version ids, set by the FHIR routes; not hashes of response bodies.
  app.set('etag', false);
  const trusted = parseCidrs(options.trustedProxies ?? DEFAULT_TRUSTED_PROXIES);
  app.set('trust proxy', (address: string) => addressIn(address, trusted));

  app.use(
    pinoHttp({
      logger: options.logger,
      // Each request's id is on every log line it causes, and echoed back for support.
      genReqId: (req, res) => {
        const given = req.headers['x-request-id'];
        const id = typeof given === 'string' && /^[\w\-.]{1,128}$/.test(given) ? given : randomUUID();
        res.setHeader('X-Request-Id', id);
        return id;
      },
      autoLogging: { ignore: (req) => req.url === '/healthz' },
      // A completion line carries what an operator searches by, not every header (~860 bytes a line).
      serializers: {
        // A Tyro source's token URL (/api/webhooks/tyro/<id>/<urlToken>) carries a credential.
        req: (req: { id: unknown; method: string; url: string }) => ({ id: req.id, method: req.method, url: req.url.replace(/^(\/api\/webhooks\/tyro\/[^/?]+\/)[^/?]+/, '$1[redacted]') }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
      },
      customProps: (_req, res) => {
        const tenant = (res as { locals?: { tenantId?: string } }).locals?.tenantId;
        return tenant === undefined ? {} : { tenant };
      },
      // Lines logged while handling a request carry just its `reqId`; the completion line has it all.
      quietReqLogger: true,
    }),
  );

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  // Token endpoints and discovery need no token; /admin and /fhir (but /fhir/metadata) do.
  const auth = authSettings({
    allowPrivateNetworks: options.allowPrivateNetworks ?? false,
    ...options.auth,
    issuer: options.auth?.issuer ?? options.baseUrl ?? DEFAULT_ISSUER,
    tokenEndpointUrl: options.auth?.tokenEndpointUrl ?? (options.baseUrl && `${options.baseUrl}${OAUTH_TOKEN_PATH}`),
  });
  const authDeps = { db: options.db, settings: auth };
  guardAuthBodies(app, OAUTH_TOKEN_PATH);
  app.use(tokenRoutes({ ...authDeps, limiter: createFailureLimiter(options.db, auth), baseUrl: options.baseUrl }));
  app.use('/admin/webhook-sources', webhookSourceRoutes(authDeps));
  // One observer for every write, from /fhir or from billing: Subscriptions see both, and billing
  // re-matches held payments and waiting credit in the write's transaction (billing/observer.ts).
  // The write log first: it only notes what each transaction wrote, for the inbound journal.
  const observer: ChangeObserver = composeObservers([
    writeLog,
    subscriptionObserver({ allowPrivateNetworks: options.allowPrivateNetworks ?? false }),
    billingObserver({ db: options.db, observer: () => observer }),
  ]);
  // Payments waiting for their claim (admin scope), before /admin's catch-all 404.
  app.use(unmatchedPaymentRoutes({ db: options.db, auth: authDeps, observer, baseUrl: options.baseUrl }));
  // Rebuilding the search index after a search parameter was added (admin scope), before /admin's catch-all 404.
  app.use(reindexRoutes({ ...authDeps, baseUrl: options.baseUrl }));
  // The operator read APIs (the console's and the CLI's), on their own paths under /admin.
  app.use('/admin', opsRoutes(authDeps));
  app.use('/admin', adminRoutes(authDeps));
  // Webhooks (/api/webhooks/..., each sender authenticates its way) and GET /api/openapi.json.
  app.use(inboundRoutes({ db: options.db, auth: authDeps, observer, baseUrl: options.baseUrl, version: VERSION }));
  app.use(
    '/fhir',
    fhirRoutes({
      db: options.db,
      baseUrl: options.baseUrl,
      version: VERSION,
      authenticate: fhirAuth(authDeps),
      tokenPath: OAUTH_TOKEN_PATH,
      observer,
      extend: (router) => {
        addSubscriptionOperations(router);
        addBillingOperations(router);
      },
      subscriptionTopics: SUBSCRIPTION_TOPICS.map((t) => t.url),
      // Subscription secrets are write-only: masked in every answer but the write that sent them.
      conceal: concealAnswer,
    }),
  );
  if (options.console ?? true) app.use(consoleRoutes());
  jsonFallbacks(app);
  return app;
}
