import express from 'express';
import type { NextFunction, Request, RequestHandler, Response, Router } from 'express';
import { OperationOutcomeError, getStatus, isOperationOutcome } from '@medplum/core';
import { FhirRouter } from '@medplum/fhir-router';
import type { FhirRequest, FhirResponse, HttpMethod } from '@medplum/fhir-router';
import type { OperationOutcome, Resource } from '@medplum/fhirtypes';
import type { Database } from '../db/index.ts';
import { databaseUnavailable } from '../db/unavailable.ts';
import type { AccessPolicy } from './access.ts';
import { buildCapabilityStatement } from './capability.ts';
import type { ChangeObserver } from './change-observer.ts';
import { replaceBatchRoute } from './bundle.ts';
import { notModified, preferredBody, returnPreference } from './conditional-read.ts';
import { addCompartmentRoutes } from './compartment.ts';
import { addOperations } from './operations.ts';
import { replaceSearchRoutes } from './search-routes.ts';
import { internalErrorOutcome, notFoundError, outcome } from './outcomes.ts';
import { PostgresRepository } from './repository.ts';
import { malformedQuery } from './search/limits.ts';
import { refuseMalformedRequest } from './request-checks.ts';
import { UnsafeBodyError, guardParsedBody, jsonBody } from '../http/json-guard.ts';

export const FHIR_JSON = 'application/fhir+json';
/**
 * Shape budgets (README, FHIR API): validation costs tens of microseconds a value, so one resource of
 * 50,000 values is under a second of work; a Bundle is up to 1,000 requests (request-checks.ts).
 */
const RESOURCE_LIMITS = { maxDepth: 64, maxNodes: 50_000 };
const BUNDLE_LIMITS = { maxDepth: 64, maxNodes: 250_000 };
const FHIR_JSON_TYPES = ['application/json', 'application/fhir+json', 'application/json-patch+json', 'application/*+json'];
export interface FhirRoutesOptions {
  db: Database;
  /** Public base URL of the server; absent: taken from each request's host. */
  baseUrl?: string;
  version: string;
  /**
   * Runs before everything but /metadata and sets `res.locals.tenantId` and `res.locals.access`
   * (an AccessPolicy), or answers 401 itself (auth/'s fhirAuth). No request reaches the repository
   * without it.
   */
  authenticate: RequestHandler;
  /** Told of every write, to act in its transaction (Subscriptions). */
  observer?: ChangeObserver;
  /** Adds routes of other concerns (e.g. Subscription operations) to the FHIR router. */
  extend?: (router: FhirRouter) => void;
  /** Path of the OAuth 2.0 token endpoint, for the CapabilityStatement's security. */
  tokenPath: string;
  /** Canonical URLs of the subscription topics offered, for the CapabilityStatement. */
  subscriptionTopics?: string[];
  /**
   * What a caller may see of an answer (Subscriptions: secrets are write-only). Runs on every
   * answer with a body: reads, searches, history, Bundles, operations.
   */
  conceal?: (answer: Resource) => Resource;
}

/**
 * The FHIR REST API under /fhir: @medplum/fhir-router's FhirRouter does the REST semantics
 * (interactions, conditional operations, batch/transaction, _include) over our PostgresRepository;
 * this layer turns HTTP into FhirRequests and FhirResponses back into HTTP with FHIR's headers.
 */
export function fhirRoutes(options: FhirRoutesOptions): Router {
  const fhirRouter = new FhirRouter();
  replaceBatchRoute(fhirRouter);
  replaceSearchRoutes(fhirRouter);
  addCompartmentRoutes(fhirRouter);
  addOperations(fhirRouter);
  options.extend?.(fhirRouter);
  const routes = express.Router();
  const fhirBase = (req: Request): string => `${options.baseUrl ?? `${req.protocol}://${req.get('host')}`}/fhir`;
  // References under either are this server's (references.ts): the public base and the request's.
  const localBases = (req: Request): string[] => [...new Set([fhirBase(req), `${req.protocol}://${req.get('host')}/fhir`])];

  routes.get('/metadata', (req, res) => {
    const base = fhirBase(req);
    const tokenUrl = `${base.replace(/\/fhir$/, '')}${options.tokenPath}`;
    res.type(FHIR_JSON).json(buildCapabilityStatement(base, { version: options.version, subscriptionTopics: options.subscriptionTopics ?? [], tokenUrl }));
  });

  // Everything below needs a valid access token; bodies are not even parsed without one.
  routes.use(options.authenticate);

  // Bodies within a size and shape budget (http/json-guard.ts): a batch or transaction may be large,
  // one resource or patch far less; POST [type]/_search takes its parameters as a form.
  const bundleBody = jsonBody({ type: FHIR_JSON_TYPES, limit: '16mb', limits: BUNDLE_LIMITS });
  const resourceBody = jsonBody({ type: FHIR_JSON_TYPES, limit: '4mb', limits: RESOURCE_LIMITS });
  routes.post('/', bundleBody);
  routes.use(resourceBody);
  routes.use(
    express.urlencoded({
      extended: false,
      limit: '1mb',
      parameterLimit: 1000,
      verify: (_req, _res, body) => {
        const malformed = malformedQuery(body.toString('latin1'));
        if (malformed) throw Object.assign(new Error(malformed), { status: 400 });
      },
    }),
    guardParsedBody(),
  );

  routes.use(async (req: Request, res: Response) => {
    const refusal = refuseMalformedRequest(req);
    if (refusal) {
      res.status(refusal.status).type(FHIR_JSON).json(refusal.outcome);
      return;
    }
    const { tenantId, access } = res.locals as { tenantId?: string; access?: AccessPolicy };
    if (!tenantId || !access) throw new Error('FHIR request without an authenticated tenant and access policy');
    const repo = new PostgresRepository(options.db, { tenantId, access, baseUrl: fhirBase(req), localBases: localBases(req) }, { observer: options.observer });
    const fhirRequest: FhirRequest = {
      method: (req.method === 'HEAD' ? 'GET' : req.method) as HttpMethod, // HEAD: GET's headers, no body (Express)
      url: req.url, // path and query relative to /fhir
      pathname: '',
      body: req.body,
      params: {},
      query: {},
      headers: req.headers,
      config: { transactions: true },
    };
    const [result, resource] = await dispatch(fhirRouter, fhirRequest, repo);
    const created = resource !== undefined && PostgresRepository.created(resource);
    sendFhirResponse(req, res, result, resource && options.conceal ? options.conceal(resource) : resource, repo.context.baseUrl, created);
  });

  routes.use(fhirErrorHandler);
  return routes;
}

/**
 * FhirRouter.handleRequest, but an error that is not an OperationOutcomeError (a database failure,
 * a bug) is thrown on to the error handler as a 500; handleRequest would report it as a 400.
 */
async function dispatch(router: FhirRouter, req: FhirRequest, repo: PostgresRepository): Promise<FhirResponse> {
  try {
    // find() refuses an overlong query string with an OperationOutcomeError too.
    const route = router.find(req.method, req.url);
    if (!route) return [notFoundError(`No FHIR route for ${req.method} ${req.url.split('?')[0]}`).outcome];
    req.params = route.params;
    req.pathname = route.path;
    if (route.query) req.query = route.query;
    return await route.handler(req, repo, router);
  } catch (err) {
    if (err instanceof OperationOutcomeError) return [err.outcome];
    throw err;
  }
}

function sendFhirResponse(req: Request, res: Response, result: OperationOutcome, resource: Resource | undefined, base: string, created: boolean): void {
  let status = getStatus(result);
  if (status >= 500) {
    req.log?.error({ outcome: result }, 'FHIR request failed');
    res.status(status).type(FHIR_JSON).json(internalErrorOutcome);
    return;
  }
  if (!resource) {
    res.status(status).type(FHIR_JSON).json(result);
    return;
  }
  const { versionId, lastUpdated } = resource.meta ?? {};
  if (versionId && resource.resourceType !== 'Bundle' && !isOperationOutcome(resource)) {
    res.set('ETag', `W/"${versionId}"`);
    if (lastUpdated) res.set('Last-Modified', new Date(lastUpdated).toUTCString());
    // An update that created the resource (updateCreate, or re-creating a deleted one): 201, as for create.
    if (req.method === 'PUT' && status === 200 && created) status = 201;
    if (status === 201) res.set('Location', `${base}/${resource.resourceType}/${resource.id}/_history/${versionId}`);
    if ((req.method === 'GET' || req.method === 'HEAD') && status === 200 && notModified(req, resource)) {
      res.status(304).end();
      return;
    }
    if (req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH') {
      const body = preferredBody(returnPreference(req), resource, result);
      if (!body) {
        res.status(status).end();
        return;
      }
      res.status(status).type(FHIR_JSON).json(body);
      return;
    }
  }
  res.status(status).type(FHIR_JSON).json(resource);
}

/** Every error under /fhir is an OperationOutcome: malformed JSON, oversized bodies, anything thrown. */
function fhirErrorHandler(err: unknown, req: Request, res: Response, _next: NextFunction): void {
  const e = err as { type?: string; status?: number; message?: string };
  const unavailable = databaseUnavailable(err);
  if (unavailable) {
    req.log?.warn({ err }, 'database unavailable');
    res.status(503).set('Retry-After', String(unavailable.retryAfterSeconds)).type(FHIR_JSON).json(outcome('error', 'transient', unavailable.message));
  } else if (e.type === 'entity.parse.failed') {
    res.status(400).type(FHIR_JSON).json(outcome('error', 'structure', `Malformed JSON: ${e.message}`));
  } else if (e.type === 'entity.too.large' || e.status === 413) {
    res.status(413).type(FHIR_JSON).json(outcome('error', 'too-costly', e.type === 'entity.too.large' ? 'Request body too large' : (e.message ?? 'Request body too large')));
  } else if (err instanceof UnsafeBodyError) {
    res.status(err.status).type(FHIR_JSON).json(outcome('error', 'invalid', err.message, fhirExpression(req.body, err.pointer)));
  } else if (e.status && e.status >= 400 && e.status < 500) {
    res.status(e.status).type(FHIR_JSON).json(outcome('error', 'invalid', e.message ?? 'Bad request'));
  } else {
    req.log?.error({ err }, 'unhandled error under /fhir');
    res.status(500).type(FHIR_JSON).json(internalErrorOutcome);
  }
}

/** A JSON Pointer into a resource as a FHIRPath-like expression: /channel/header/1 → Subscription.channel.header[1]. */
function fhirExpression(body: unknown, pointer: string | undefined): string | undefined {
  const type = (body as { resourceType?: unknown } | null)?.resourceType;
  if (pointer === undefined || typeof type !== 'string' || !/^[A-Z][A-Za-z]{0,63}$/.test(type)) return undefined;
  return pointer
    .split('/')
    .slice(1)
    .reduce((path, segment) => (/^\d+$/.test(segment) ? `${path}[${segment}]` : `${path}.${segment.replace(/~1/g, '/').replace(/~0/g, '~')}`), type);
}
