import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import { z } from 'zod';
import { databaseUnavailable } from '../db/unavailable.ts';
import { ASSERTION_ALGS, ASSERTION_TYPE } from './assertion.ts';
import { authenticateClient, grantToken } from './client-auth.ts';
import type { Credentials, TokenDeps } from './client-auth.ts';
import { publicJwks } from './keys.ts';
import { refuse } from './result.ts';
import type { Refusal, Result } from './result.ts';
import { ADMIN_SCOPE, ALL_FHIR_SCOPE, WEBHOOK_SCOPE } from './scopes.ts';
import type { IssuedToken } from './tokens.ts';

/** The OAuth 2.0 token endpoint (RFC 6749; SMART Backend Services). */
export const OAUTH_TOKEN_PATH = '/oauth2/token';

/**
 * The token endpoints and discovery documents, none of which needs a token:
 *   POST /api/token          JSON {clientId, clientSecret} → {accessToken, tokenType, expiresIn}
 *                            (the Cair contract, seeds/000); errors {error}
 *   POST /oauth2/token       RFC 6749 client credentials: client_secret_basic, client_secret_post
 *                            or private_key_jwt (SMART Backend Services); errors {error, error_description}
 *   GET  /.well-known/jwks.json                 the public keys that verify our access tokens
 *   GET  /fhir/.well-known/smart-configuration  SMART discovery
 */
export interface TokenRoutesOptions extends TokenDeps {
  /** Public base URL; absent: taken from each request's host. */
  baseUrl?: string;
}

export const ApiTokenBody = z.object({
  clientId: z.string().min(1).max(128),
  clientSecret: z.string().min(1).max(512),
});

const OAuthForm = z.object({
  grant_type: z.string().optional(),
  scope: z.string().max(4096).optional(),
  client_id: z.string().min(1).max(128).optional(),
  client_secret: z.string().min(1).max(512).optional(),
  client_assertion_type: z.string().optional(),
  client_assertion: z.string().min(1).max(16_384).optional(),
});

const NO_STORE = { 'Cache-Control': 'no-store', Pragma: 'no-cache' };

export function tokenRoutes(options: TokenRoutesOptions): Router {
  const routes = express.Router();
  const base = (req: Request): string => options.baseUrl ?? `${req.protocol}://${req.get('host')}`;
  const attempt = (req: Request) => ({ address: req.ip ?? 'unknown', log: req.log });

  routes.post('/api/token', express.json({ limit: '16kb' }), async (req, res) => {
    const body = ApiTokenBody.safeParse(req.body);
    if (!body.success) {
      res.status(400).json({ error: 'Invalid request body', details: body.error.issues.map((i) => ({ path: i.path, message: i.message })) });
      return;
    }
    const credentials: Credentials = { kind: 'secret', clientId: body.data.clientId, secret: body.data.clientSecret };
    const result = await issue(options, credentials, undefined, attempt(req));
    if (!result.ok) {
      if (result.retryAfter) res.set('Retry-After', String(result.retryAfter));
      res.status(result.status).json({ error: result.message });
      return;
    }
    res.set(NO_STORE).json({ accessToken: result.value.accessToken, tokenType: 'Bearer', expiresIn: result.value.expiresIn });
  });

  routes.post(OAUTH_TOKEN_PATH, express.urlencoded({ extended: false, limit: '64kb' }), async (req, res) => {
    const parsed = parseOAuthRequest(req);
    const result = parsed.ok ? await issue(options, parsed.value.credentials, parsed.value.scope, attempt(req)) : parsed;
    if (!result.ok) {
      sendOAuthError(res, result, parsed.ok && parsed.value.basic);
      return;
    }
    const { accessToken, expiresIn, scope } = result.value;
    res.set(NO_STORE).json({ access_token: accessToken, token_type: 'Bearer', expires_in: expiresIn, scope });
  });

  routes.get('/.well-known/jwks.json', async (_req, res) => {
    res.set('Cache-Control', 'public, max-age=60').json(await publicJwks(options.db));
  });

  routes.get('/fhir/.well-known/smart-configuration', (req, res) => {
    res.json({
      token_endpoint: `${base(req)}${OAUTH_TOKEN_PATH}`,
      jwks_uri: `${base(req)}/.well-known/jwks.json`,
      grant_types_supported: ['client_credentials'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
      token_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGS,
      scopes_supported: [ALL_FHIR_SCOPE, 'system/*.rs', 'system/*.read', 'system/*.write', WEBHOOK_SCOPE, ADMIN_SCOPE],
      capabilities: ['client-confidential-symmetric', 'client-confidential-asymmetric', 'permission-v1', 'permission-v2'],
    });
  });

  // Unreadable bodies (4xx from the body parsers) and our own failures (500), in each contract's shape.
  routes.use((err: { status?: number; type?: string }, req: Request, res: Response, next: NextFunction) => {
    const unavailable = databaseUnavailable(err);
    if (unavailable && (req.path === '/api/token' || req.path === OAUTH_TOKEN_PATH)) {
      res.set('Retry-After', String(unavailable.retryAfterSeconds)).status(503);
      res.json(req.path === '/api/token' ? { error: 'Failed to issue token' } : { error: 'temporarily_unavailable', error_description: unavailable.message });
      return;
    }
    const unreadable = err.status !== undefined && err.status >= 400 && err.status < 500;
    if (!unreadable) req.log?.error({ err }, 'token endpoint failed');
    if (req.path === '/api/token') {
      res.status(unreadable ? err.status! : 500).json({ error: unreadable ? 'Invalid request body' : 'Failed to issue token' });
    } else if (req.path === OAUTH_TOKEN_PATH) {
      res
        .status(unreadable ? err.status! : 500)
        .json(unreadable ? { error: 'invalid_request', error_description: 'Unreadable request body' } : { error: 'server_error', error_description: 'Failed to issue token' });
    } else {
      next(err);
    }
  });
  return routes;
}

async function issue(
  deps: TokenDeps,
  credentials: Credentials,
  scope: string | undefined,
  attempt: { address: string; log: Request['log'] },
): Promise<Result<IssuedToken>> {
  const client = await authenticateClient(deps, credentials, attempt);
  return client.ok ? grantToken(deps, client.value, scope) : client;
}

interface OAuthRequest {
  credentials: Credentials;
  scope: string | undefined;
  /** The client authenticated with HTTP Basic (so a 401 carries WWW-Authenticate: Basic). */
  basic: boolean;
}

/** RFC 6749 §4.4 and §2.3, RFC 7523 §2.2: exactly one way of client authentication. */
function parseOAuthRequest(req: Request): Result<OAuthRequest> {
  const form = OAuthForm.safeParse(req.body ?? {});
  if (!form.success) return refuse(400, 'invalid_request', 'Send one value per parameter as application/x-www-form-urlencoded');
  const f = form.data;
  if (!f.grant_type) return refuse(400, 'invalid_request', 'grant_type is required');
  if (f.grant_type !== 'client_credentials') return refuse(400, 'unsupported_grant_type', 'Only grant_type=client_credentials is supported');

  const basic = parseBasic(req.headers.authorization);
  if (basic === 'malformed') return refuse(400, 'invalid_request', 'Malformed Authorization header');
  const methods = [basic, f.client_secret, f.client_assertion ?? f.client_assertion_type].filter((m) => m !== undefined);
  if (methods.length > 1) return refuse(400, 'invalid_request', 'Use exactly one client authentication method');

  let credentials: Credentials;
  if (basic) {
    if (f.client_id && f.client_id !== basic.clientId) return refuse(400, 'invalid_request', 'client_id does not match the Authorization header');
    credentials = { kind: 'secret', clientId: basic.clientId, secret: basic.secret };
  } else if (f.client_secret) {
    if (!f.client_id) return refuse(400, 'invalid_request', 'client_id is required with client_secret');
    credentials = { kind: 'secret', clientId: f.client_id, secret: f.client_secret };
  } else if (f.client_assertion || f.client_assertion_type) {
    if (f.client_assertion_type !== ASSERTION_TYPE) return refuse(400, 'invalid_request', `client_assertion_type must be ${ASSERTION_TYPE}`);
    if (!f.client_assertion) return refuse(400, 'invalid_request', 'client_assertion is required');
    credentials = { kind: 'assertion', assertion: f.client_assertion };
  } else {
    return refuse(401, 'invalid_client', 'Client authentication is required');
  }
  return { ok: true, value: { credentials, scope: f.scope, basic: basic !== undefined } };
}

/**
 * HTTP Basic with the form-encoded client id and secret of RFC 6749 §2.3.1. Percent-escapes are
 * decoded, but `+` is kept and a lone `%` taken literally: most clients (curl -u among them) send
 * secrets unencoded, and a literal `+` in a secret is far more common than a space.
 */
function parseBasic(header: string | undefined): { clientId: string; secret: string } | 'malformed' | undefined {
  if (!header || !/^Basic\s/i.test(header)) return undefined;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return 'malformed';
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 1) return 'malformed';
  const unescape = (s: string): string => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  return { clientId: unescape(decoded.slice(0, colon)), secret: unescape(decoded.slice(colon + 1)) };
}

function sendOAuthError(res: Response, refusal: Refusal, basic: boolean): void {
  const error = refusal.code === 'rate_limited' ? 'temporarily_unavailable' : refusal.code;
  if (refusal.retryAfter) res.set('Retry-After', String(refusal.retryAfter));
  if (refusal.status === 401 && basic) res.set('WWW-Authenticate', 'Basic realm="fhir-billing"');
  res.status(refusal.status).set(NO_STORE).json({ error, error_description: refusal.message });
}
