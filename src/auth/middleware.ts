import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Queryable } from '../db/index.ts';
import { refuse } from './result.ts';
import type { Refusal } from './result.ts';
import { tenantExists } from './store.ts';
import { ADMIN_SCOPE, WEBHOOK_SCOPE } from './scopes.ts';
import type { AuthSettings } from './settings.ts';
import { verifyAccessToken } from './tokens.ts';
import type { Principal } from './tokens.ts';

/**
 * Bearer-token middleware. On success `res.locals` carries `principal` (client, tenant, scopes),
 * `tenantId` and `access` (the scopes as the FHIR layer's AccessPolicy). A missing or invalid token
 * is 401 and a token without the scope a route needs is 403, each in the shape of the route's
 * contract: OperationOutcome on /fhir, `{error}` on /admin, and on inbound webhooks exactly
 * `{"error": "Invalid or expired access token"}` (seeds/000).
 */
export interface AuthDeps {
  db: Queryable;
  settings: AuthSettings;
}

export interface AuthLocals {
  principal: Principal;
  tenantId: string;
  access: Principal['scopes'];
}

type Render = (res: Response, refusal: Refusal) => void;
/** The message when the principal lacks what the route needs; undefined when it has it. */
type Requirement = (principal: Principal) => string | undefined;

const REALM = 'fhir-billing';

function bearerToken(req: Request): string | undefined {
  const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(req.headers.authorization ?? '');
  return m?.[1];
}

function challenge(res: Response, refusal: Refusal, hadToken: boolean): void {
  if (refusal.status !== 401) return;
  const description = refusal.message.replace(/["\\]/g, "'");
  res.set('WWW-Authenticate', hadToken ? `Bearer realm="${REALM}", error="invalid_token", error_description="${description}"` : `Bearer realm="${REALM}"`);
}

export function bearerAuth(deps: AuthDeps, render: Render, requirement?: Requirement): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    try {
      const token = bearerToken(req);
      const result = token ? await verifyAccessToken(deps.db, deps.settings, token) : refuse(401, 'invalid_token', 'An access token is required (Authorization: Bearer)');
      if (!result.ok) {
        challenge(res, result, token !== undefined);
        render(res, result);
        return;
      }
      const lacking = requirement?.(result.value);
      if (lacking) {
        res.set('WWW-Authenticate', `Bearer realm="${REALM}", error="insufficient_scope"`);
        render(res, refuse(403, 'insufficient_scope', lacking));
        return;
      }
      const locals: AuthLocals = { principal: result.value, tenantId: result.value.tenantId, access: result.value.scopes };
      Object.assign(res.locals, locals);
      next();
    } catch (err) {
      next(err);
    }
  };
}

const renderFhir: Render = (res, refusal) => {
  const code = ({ 400: 'invalid', 401: 'login', 404: 'not-found' } as Record<number, string>)[refusal.status] ?? 'forbidden';
  res
    .status(refusal.status)
    .type('application/fhir+json')
    .json({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, details: { text: refusal.message } }] });
};

const renderJson: Render = (res, refusal) => {
  res.status(refusal.status).json({ error: refusal.message });
};

const renderWebhook: Render = (res, refusal) => {
  res.status(refusal.status).json({ error: refusal.status === 401 ? 'Invalid or expired access token' : refusal.message });
};

/**
 * /fhir: any valid token; the scopes are checked per interaction by the repository. The tenant is
 * the token's, or the one `X-Tenant` names: an operator (the `admin` scope, which spans tenants)
 * reads and writes a tenant's FHIR data with its own FHIR scopes that way; a client without it may
 * name only its own tenant (403 otherwise), and an unknown tenant is a 404.
 */
export function fhirAuth(deps: AuthDeps): RequestHandler {
  const verify = bearerAuth(deps, renderFhir);
  return (req, res, next) =>
    verify(req, res, (err?: unknown) => {
      if (err !== undefined) return next(err);
      actingTenant(deps, req, res).then((refusal) => (refusal ? renderFhir(res, refusal) : next()), next);
    });
}

export const TENANT_HEADER = 'X-Tenant';
const TENANT_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** Applies `X-Tenant` to `res.locals.tenantId`; the refusal when it may not. */
async function actingTenant(deps: AuthDeps, req: Request, res: Response): Promise<Refusal | undefined> {
  const named = req.get(TENANT_HEADER);
  const locals = res.locals as AuthLocals;
  if (named === undefined || named === locals.tenantId) return undefined;
  if (!TENANT_ID.test(named)) return refuse(400, 'invalid_request', `${TENANT_HEADER} must be a tenant id (letters, digits, . _ -)`);
  if (!locals.principal.scopes.has(ADMIN_SCOPE)) {
    return refuse(403, 'insufficient_scope', `${TENANT_HEADER} may name another tenant only with the admin scope; this client is of tenant ${locals.tenantId}`);
  }
  if (!(await tenantExists(deps.db, named))) return refuse(404, 'not_found', `Tenant ${named} not found`);
  locals.tenantId = named;
  return undefined;
}

/**
 * The operator read APIs under /admin (ops/): any valid token, JSON errors; each route then asks
 * for the scopes it needs and which tenant the client may read (tenant-access.ts).
 */
export function operatorAuth(deps: AuthDeps): RequestHandler {
  return bearerAuth(deps, renderJson);
}

/** /admin: the `admin` scope. */
export function adminAuth(deps: AuthDeps): RequestHandler {
  return bearerAuth(deps, renderJson, (p) => (p.scopes.has(ADMIN_SCOPE) ? undefined : 'The admin API needs the admin scope'));
}

/**
 * Inbound webhooks that write `resourceType` (the patient-payment webhook writes
 * PaymentReconciliation): the `webhook` scope, or create on that type.
 */
export function webhookAuth(deps: AuthDeps, resourceType = 'PaymentReconciliation'): RequestHandler {
  return bearerAuth(deps, renderWebhook, (p) =>
    p.scopes.has(WEBHOOK_SCOPE) || p.scopes.allows(resourceType, 'c')
      ? undefined
      : `This webhook needs the ${WEBHOOK_SCOPE} scope or system/${resourceType}.c`,
  );
}
