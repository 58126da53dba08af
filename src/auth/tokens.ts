import { randomUUID } from 'node:crypto';
import { SignJWT, decodeJwt, decodeProtectedHeader, errors, jwtVerify } from 'jose';
import type { JWTPayload } from 'jose';
import type { Queryable } from '../db/index.ts';
import { TOKEN_ALG, activeSigningKey, verificationKey } from './keys.ts';
import { ok, refuse } from './result.ts';
import type { Result } from './result.ts';
import { ScopeSet } from './scopes.ts';
import type { AuthSettings } from './settings.ts';
import { selectTokenFacts, selectTokenGeneration } from './store.ts';

/**
 * Access tokens: JWTs (RFC 9068 `at+jwt`) signed ES256 with the database's active key, carrying
 * iss, aud (both the issuer), sub (the client id), tenant, scope, jti, iat and exp. Verification
 * accepts ES256 only (so `alg: none` and HS256 made with the public key fail), a kid that still
 * verifies, our iss and aud, a current exp/nbf/iat, and a client that still exists in the claimed
 * tenant and has not rotated its secret since (the token's `gen` claim is still the client's token
 * generation: a counter, so a rotation in the token's own second revokes it too, which a comparison
 * of whole-second times cannot). The token's scopes are cut to the client's current grants.
 */
export interface Principal {
  clientId: string;
  tenantId: string;
  scopes: ScopeSet;
  /** The client's token generation the credentials were checked under; absent: read now. */
  tokenGeneration?: number;
}

export interface IssuedToken {
  accessToken: string;
  expiresIn: number;
  scope: string;
}

const TOKEN_TYPE = 'at+jwt';
/** Clock skew allowed between servers when checking exp, nbf and iat. */
const CLOCK_TOLERANCE_SECONDS = 5;
/** No token of ours lives longer (config caps TOKEN_TTL_SECONDS to this). */
export const MAX_TOKEN_TTL_SECONDS = 86_400;

export async function issueAccessToken(db: Queryable, settings: AuthSettings, principal: Principal): Promise<IssuedToken> {
  const { kid, key } = await activeSigningKey(db);
  const scope = principal.scopes.toString();
  const gen = principal.tokenGeneration ?? (await selectTokenGeneration(db, principal.clientId));
  const accessToken = await new SignJWT({ tenant: principal.tenantId, scope, gen })
    .setProtectedHeader({ alg: TOKEN_ALG, kid, typ: TOKEN_TYPE })
    .setIssuer(settings.issuer)
    .setAudience(settings.issuer)
    .setSubject(principal.clientId)
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime(`${settings.tokenTtlSeconds}s`)
    .sign(key);
  return { accessToken, expiresIn: settings.tokenTtlSeconds, scope };
}

const invalid = (message: string) => refuse(401, 'invalid_token', message);

/**
 * Tokens whose signature and static claims were verified, with their payload. A token string's
 * signature never changes, and ES256 verification costs about 120 µs of CPU, so it is done once
 * per token per process. Everything that can change (expiry, the key still verifying, the client
 * still existing in its tenant, its secret not rotated since) is still checked on every request.
 */
const verifiedSignatures = new Map<string, JWTPayload>();
const MAX_REMEMBERED = 10_000;

/** The token's signature and claims, verified once per issuer and token; expiry every time. */
async function checkSignature(settings: AuthSettings, token: string, kid: string, publicJwk: string): Promise<Result<JWTPayload>> {
  const memoKey = `${settings.issuer} ${token}`;
  const seen = verifiedSignatures.get(memoKey);
  if (seen) {
    return seen.exp! + CLOCK_TOLERANCE_SECONDS < Date.now() / 1000 ? invalid('Access token expired') : ok(seen);
  }
  try {
    const { payload } = await jwtVerify(token, await verificationKey(kid, publicJwk), {
      algorithms: [TOKEN_ALG],
      issuer: settings.issuer,
      audience: settings.issuer,
      typ: TOKEN_TYPE,
      requiredClaims: ['exp', 'iat', 'jti', 'sub'],
      maxTokenAge: MAX_TOKEN_TTL_SECONDS,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
    });
    if (verifiedSignatures.size >= MAX_REMEMBERED) verifiedSignatures.delete(verifiedSignatures.keys().next().value!);
    verifiedSignatures.set(memoKey, payload);
    return ok(payload);
  } catch (err) {
    if (err instanceof errors.JWTExpired) return invalid('Access token expired');
    if (err instanceof errors.JWSSignatureVerificationFailed) return invalid('Access token signature is invalid');
    if (err instanceof errors.JOSEError) return invalid(`Access token refused: ${err.message}`);
    throw err;
  }
}

export async function verifyAccessToken(db: Queryable, settings: AuthSettings, token: string): Promise<Result<Principal>> {
  let kid: string | undefined;
  let sub: unknown;
  try {
    const header = decodeProtectedHeader(token);
    if (header.alg !== TOKEN_ALG) return invalid(`Access tokens are signed ${TOKEN_ALG}, not ${String(header.alg)}`);
    kid = header.kid;
    sub = decodeJwt(token).sub;
  } catch {
    return invalid('Malformed access token');
  }
  if (typeof kid !== 'string' || typeof sub !== 'string') return invalid('Access token lacks kid or sub');

  const facts = await selectTokenFacts(db, kid, sub);
  if (!facts) return invalid('Access token signed by an unknown or retired key');
  const checked = await checkSignature(settings, token, kid, facts.publicJwk);
  if (!checked.ok) return checked;
  const payload = checked.value;
  const client = facts.client;
  if (!client) return invalid('The client of this access token no longer exists');
  if (payload.tenant !== client.tenantId) return invalid('Access token tenant does not match its client');
  const rotated = (payload.gen ?? 0) !== client.tokenGeneration || (client.validAfter !== null && payload.iat! < client.validAfter);
  if (rotated) return invalid('Access token issued before the client secret was rotated');
  if (typeof payload.scope !== 'string') return invalid('Access token lacks scope');
  const scopes = new ScopeSet(payload.scope.split(' ').filter(Boolean)).within(new ScopeSet(client.scopes));
  return ok({ clientId: sub, tenantId: client.tenantId, scopes });
}
