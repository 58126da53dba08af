import { createLocalJWKSet, decodeJwt, errors, jwtVerify } from 'jose';
import type { JSONWebKeySet } from 'jose';
import type { Queryable } from '../db/index.ts';
import { fetchJwks } from './jwks-fetch.ts';
import { ok, refuse } from './result.ts';
import type { Result } from './result.ts';
import { assertionAudiences } from './settings.ts';
import type { AuthSettings } from './settings.ts';
import { recordAssertionJti, selectClient } from './store.ts';
import type { ClientRow } from './store.ts';

/**
 * SMART Backend Services client authentication (private_key_jwt, RFC 7523): the client signs a
 * short-lived JWT with a key whose public part it registered (jwks inline or jwksUrl). We require
 * iss = sub = client_id, aud = our configured token endpoint URL or issuer (never one derived from
 * the request), exp at most five minutes ahead, and a jti
 * never seen before (kept in client_assertion_jti until the assertion expires).
 */
export const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
export const ASSERTION_ALGS = ['RS384', 'ES384', 'RS256', 'ES256'];
const MAX_LIFETIME_SECONDS = 300;
const CLOCK_TOLERANCE_SECONDS = 5;

const invalidClient = (message: string) => refuse(401, 'invalid_client', message);

/** The client id an assertion claims, read without verification (to key the rate limiter). */
export function claimedClientId(assertion: string): string | undefined {
  try {
    const { sub } = decodeJwt(assertion);
    return typeof sub === 'string' && sub.length <= 128 ? sub : undefined;
  } catch {
    return undefined;
  }
}

export async function verifyClientAssertion(
  db: Queryable,
  settings: AuthSettings,
  assertion: string,
): Promise<Result<ClientRow>> {
  const clientId = claimedClientId(assertion);
  if (!clientId) return invalidClient('client_assertion is not a JWT with a sub');
  const client = await selectClient(db, clientId);
  if (!client) return invalidClient('Unknown client');

  let jwks: JSONWebKeySet;
  try {
    if (client.jwks) jwks = JSON.parse(client.jwks) as JSONWebKeySet;
    else if (client.jwksUrl) jwks = await fetchJwks(client.jwksUrl, settings.allowPrivateNetworks);
    else return invalidClient('This client has no registered public keys; use its client secret');
  } catch (err) {
    return invalidClient(`Could not get the client's keys: ${(err as Error).message}`);
  }

  const audiences = assertionAudiences(settings);
  let payload;
  try {
    ({ payload } = await jwtVerify(assertion, createLocalJWKSet(jwks), {
      algorithms: ASSERTION_ALGS,
      issuer: clientId,
      subject: clientId,
      audience: audiences,
      requiredClaims: ['exp', 'jti'],
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
    }));
  } catch (err) {
    if (err instanceof errors.JWTClaimValidationFailed && err.claim === 'aud') {
      return invalidClient(`client_assertion aud must be ${audiences.map((a) => `'${a}'`).join(' or ')}`);
    }
    if (err instanceof errors.JOSEError) return invalidClient(`client_assertion refused: ${err.message}`);
    throw err;
  }
  const now = Math.floor(Date.now() / 1000);
  if (payload.exp! > now + MAX_LIFETIME_SECONDS + CLOCK_TOLERANCE_SECONDS) {
    return invalidClient('client_assertion exp must be at most 5 minutes ahead');
  }
  const expiresAt = new Date((payload.exp! + CLOCK_TOLERANCE_SECONDS) * 1000);
  if (!(await recordAssertionJti(db, clientId, String(payload.jti), expiresAt))) {
    return invalidClient('client_assertion jti was already used');
  }
  return ok(client);
}
