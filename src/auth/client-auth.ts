import type { Database } from '../db/index.ts';
import type { Logger } from '../logger.ts';
import { claimedClientId, verifyClientAssertion } from './assertion.ts';
import type { FailureLimiter } from './rate-limit.ts';
import { ok, refuse } from './result.ts';
import type { Result } from './result.ts';
import { parseScopes, ScopeSet } from './scopes.ts';
import { verifyAgainstNothing, verifySecret } from './secrets.ts';
import type { AuthSettings } from './settings.ts';
import { selectClient } from './store.ts';
import type { ClientRow } from './store.ts';
import { issueAccessToken } from './tokens.ts';
import type { IssuedToken } from './tokens.ts';

/** What the token endpoints share: who the client is (secret or assertion), and what it is granted. */
export interface TokenDeps {
  db: Database;
  settings: AuthSettings;
  limiter: FailureLimiter;
}

export type Credentials =
  | { kind: 'secret'; clientId: string; secret: string }
  | { kind: 'assertion'; assertion: string };

export interface Attempt {
  /** The caller's address (req.ip), for the per-address limit and the log. */
  address: string;
  log: Logger;
}

const BAD_CREDENTIALS = 'Invalid client credentials';

async function checkSecret(deps: TokenDeps, clientId: string, secret: string): Promise<Result<ClientRow>> {
  const client = await selectClient(deps.db, clientId);
  const matches = client ? await verifySecret(secret, client.secretHash) : await verifyAgainstNothing(secret, deps.settings.hashCost);
  return client && matches ? ok(client) : refuse(401, 'invalid_client', BAD_CREDENTIALS);
}

/**
 * Authenticates a client, refusing at once (429) while its id or address is over the failure limit.
 * The attempt is counted before the credentials are checked and given back if they hold, so
 * concurrent attempts cannot slip past the limit. Every failure is logged, with the client id and
 * address, never the secret.
 */
export async function authenticateClient(deps: TokenDeps, credentials: Credentials, attempt: Attempt): Promise<Result<ClientRow>> {
  const clientId = credentials.kind === 'secret' ? credentials.clientId : claimedClientId(credentials.assertion);
  const taken = await deps.limiter.take(clientId, attempt.address);
  if (!taken.ok) {
    const wait = taken.retryAfter;
    attempt.log.warn({ clientId, address: attempt.address, retryAfter: wait }, 'token request refused: too many failures');
    return refuse(429, 'rate_limited', `Too many failed token requests; retry in ${wait} s`, wait);
  }
  const result =
    credentials.kind === 'secret'
      ? await checkSecret(deps, credentials.clientId, credentials.secret)
      : await verifyClientAssertion(deps.db, deps.settings, credentials.assertion);
  if (result.ok) await deps.limiter.giveBack(clientId, attempt.address);
  else attempt.log.warn({ clientId, address: attempt.address, method: credentials.kind, reason: result.message }, 'token request refused');
  return result;
}

/**
 * A token for `client`: every scope it holds, or the requested ones if each is within its grants
 * (requesting one it does not hold is invalid_scope, not a silent narrowing).
 */
export async function grantToken(deps: TokenDeps, client: ClientRow, requested?: string): Promise<Result<IssuedToken>> {
  const granted = new ScopeSet(client.scopes);
  let scopes = granted;
  if (requested !== undefined && requested.trim() !== '') {
    const parsed = parseScopes(requested);
    if ('invalid' in parsed) return refuse(400, 'invalid_scope', `Unknown scope: ${parsed.invalid.join(' ')}`);
    const notGranted = parsed.scopes.list.filter((s) => !granted.covers(s));
    if (notGranted.length > 0) return refuse(400, 'invalid_scope', `Not granted to this client: ${notGranted.join(' ')}`);
    scopes = parsed.scopes;
  }
  return ok(await issueAccessToken(deps.db, deps.settings, { clientId: client.id, tenantId: client.tenantId, scopes, tokenGeneration: client.tokenGeneration }));
}
