import { timingSafeEqual } from 'node:crypto';
import type { Request } from 'express';
import { WEBHOOK_SCOPE, createFailureLimiter, verifyAccessToken } from '../../auth/index.ts';
import type { AuthDeps, FailureLimiter } from '../../auth/index.ts';
import type { Queryable } from '../../db/index.ts';
import { verifySecret } from '../../auth/secrets.ts';
import { addressIn, parseCidrs } from '../../net/addresses.ts';
import type { SourceRow } from './store.ts';

/**
 * Who may post to a registered source, checked in this order:
 * 1. the source is enabled, and the caller's address is in its allowedIps (when it has any): 403.
 *    The address is Express's req.ip, which honours X-Forwarded-For only from TRUSTED_PROXIES
 *    (app.ts sets `trust proxy` from that one setting; the token endpoint's limits use it too);
 * 2. a required header (mutual TLS terminated by a proxy) counts only when the connection comes
 *    from a trusted proxy, which is the one that set it: 401 otherwise;
 * 3. HTTP Basic with the source's username and password, or an OAuth bearer token of a client of
 *    the source's tenant with the `webhook` scope, as the source says (never either): 401 (403 for
 *    a token without the scope). Failed Basic attempts are limited per source and address, and per
 *    address, as the token endpoint's are (each costs an scrypt verification): 429 with Retry-After
 *    past it. Never per source alone: anyone could then lock the real sender out.
 */
export interface SourceAuthRefusal {
  status: 401 | 403 | 429;
  message: string;
  challenge?: string;
  retryAfter?: number;
}

type SourceAuth = { auth?: unknown; basicUsername?: unknown; requiredHeader?: { name: string; value: string } | null };

export async function authenticateSource(req: Request, source: SourceRow, deps: AuthDeps): Promise<SourceAuthRefusal | undefined> {
  const refused = admitSource(req, source);
  if (refused) return refused;
  const options = source.options as SourceAuth;
  if (options.requiredHeader) {
    const { name, value } = options.requiredHeader;
    const fromProxy = isTrustedProxy(req);
    if (!fromProxy || !same(req.get(name) ?? '', value)) return { status: 401, message: 'A verified client certificate is required' };
  }
  if (options.auth === 'oauth') return bearer(req, source, deps);
  return basic(req, source, options, limiterFor(deps));
}

const limiters = new WeakMap<Queryable, FailureLimiter>();
function limiterFor(deps: AuthDeps): FailureLimiter {
  let limiter = limiters.get(deps.db);
  if (!limiter) limiters.set(deps.db, (limiter = createFailureLimiter(deps.db, deps.settings, 'source')));
  return limiter;
}

/** Step 1 alone (enabled, allowedIps), for kinds that authenticate by signature (signing.ts). */
export function admitSource(req: Request, source: SourceRow): SourceAuthRefusal | undefined {
  if (!source.enabled) return { status: 403, message: 'This webhook source is disabled' };
  if (source.allowedIps.length > 0 && !addressIn(req.ip, parseCidrs(source.allowedIps))) {
    return { status: 403, message: `Address ${req.ip ?? 'unknown'} is not allowed for this webhook source` };
  }
  return undefined;
}

/** Express's compiled `trust proxy` (from TRUSTED_PROXIES) asked about the connection's own peer. */
function isTrustedProxy(req: Request): boolean {
  const trust = req.app.get('trust proxy fn') as ((addr: string, i: number) => boolean) | undefined;
  const peer = req.socket.remoteAddress;
  return peer !== undefined && trust !== undefined && trust(peer, 0);
}

function same(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

const BASIC_CHALLENGE = 'Basic realm="fhir-billing webhooks", charset="UTF-8"';

async function basic(req: Request, source: SourceRow, options: SourceAuth, limiter: FailureLimiter): Promise<SourceAuthRefusal | undefined> {
  const m = /^Basic +([A-Za-z0-9+/]+=*) *$/i.exec(req.headers.authorization ?? '');
  const refusal = { status: 401 as const, message: 'Invalid username or password', challenge: BASIC_CHALLENGE };
  if (!m) return { ...refusal, message: 'HTTP Basic credentials are required' };
  const checked = await limited(req, source, limiter, () => checkBasic(m[1], source, options, refusal));
  return checked.limited ? { status: 429, message: TOO_MANY, retryAfter: checked.retryAfter } : checked.failure;
}

export const TOO_MANY = 'Too many failed attempts; retry later';

/**
 * A credential check under the limit of failures per source and address, and per address (step 3
 * above): the attempt takes a point before `check` runs and gives it back when `check` passed
 * (returned undefined), so only failures stay counted; past the limit `check` does not run at all.
 * For kinds that authenticate by signature or URL token (Curacel, Tyro): a guessed signature or
 * token costs what a guessed password does, and counts against the same allowance.
 */
export async function underFailureLimit<F>(
  req: Request,
  source: SourceRow,
  deps: AuthDeps,
  check: () => Promise<F | undefined>,
): Promise<{ limited: true; retryAfter: number } | { limited: false; failure: F | undefined }> {
  return limited(req, source, limiterFor(deps), check);
}

async function limited<F>(req: Request, source: SourceRow, limiter: FailureLimiter, check: () => Promise<F | undefined>) {
  const address = req.ip ?? 'unknown';
  const caller = `${source.id}|${address}`;
  const taken = await limiter.take(caller, address);
  if (!taken.ok) return { limited: true as const, retryAfter: taken.retryAfter };
  const failure = await check();
  if (failure === undefined) await limiter.giveBack(caller, address);
  return { limited: false as const, failure };
}

async function checkBasic(encoded: string, source: SourceRow, options: SourceAuth, refusal: SourceAuthRefusal): Promise<SourceAuthRefusal | undefined> {
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return refusal;
  const username = decoded.slice(0, colon);
  const password = decoded.slice(colon + 1);
  // Both are always checked, so the time taken does not tell which one was wrong.
  const userOk = typeof options.basicUsername === 'string' && same(username, options.basicUsername);
  const passwordOk = source.secretHash !== null && (await verifySecret(password, source.secretHash));
  return userOk && passwordOk ? undefined : refusal;
}

async function bearer(req: Request, source: SourceRow, deps: AuthDeps): Promise<SourceAuthRefusal | undefined> {
  const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(req.headers.authorization ?? '');
  const challenge = 'Bearer realm="fhir-billing webhooks"';
  if (!m) return { status: 401, message: 'An OAuth 2.0 bearer token is required', challenge };
  const result = await verifyAccessToken(deps.db, deps.settings, m[1]);
  if (!result.ok) return { status: 401, message: 'Invalid or expired access token', challenge: `${challenge}, error="invalid_token"` };
  // Another tenant's token is not a credential for this source at all.
  if (result.value.tenantId !== source.tenantId) return { status: 401, message: 'Invalid or expired access token', challenge: `${challenge}, error="invalid_token"` };
  if (!result.value.scopes.has(WEBHOOK_SCOPE)) return { status: 403, message: `The token lacks the ${WEBHOOK_SCOPE} scope` };
  return undefined;
}
