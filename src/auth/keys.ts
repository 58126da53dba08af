import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import type { Queryable } from '../db/index.ts';
import { insertSigningKey, scheduleRetirementOfOthers, selectActiveSigningKey, selectSigningKeys, selectVerifyingKeys } from './store.ts';

/**
 * The keys that sign access tokens live in the database (signing_key), so every process and every
 * restart signs and verifies alike. Rotation adds a key that signs from then on; the previous keys
 * keep verifying for a grace period (at least the token lifetime) and then retire.
 * Key material is immutable per kid, so imported keys are memoised by kid; whether a kid may still
 * verify is asked of the database on every request.
 */
export const TOKEN_ALG = 'ES256';

const imported = new Map<string, CryptoKey>();

async function importOnce(kid: string, purpose: 'sign' | 'verify', jwkText: string): Promise<CryptoKey> {
  const cacheKey = `${purpose}:${kid}`;
  let key = imported.get(cacheKey);
  if (!key) {
    key = (await importJWK(JSON.parse(jwkText) as JWK, TOKEN_ALG)) as CryptoKey;
    if (imported.size > 1000) imported.clear();
    imported.set(cacheKey, key);
  }
  return key;
}

/** Generates a new ES256 key and stores it; it signs from now on. */
export async function createSigningKey(db: Queryable): Promise<string> {
  const { publicKey, privateKey } = await generateKeyPair(TOKEN_ALG, { extractable: true });
  const kid = randomUUID();
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: TOKEN_ALG, use: 'sig' };
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: TOKEN_ALG };
  await insertSigningKey(db, { kid, alg: TOKEN_ALG, publicJwk: JSON.stringify(publicJwk), privateJwk: JSON.stringify(privateJwk) });
  return kid;
}

/** The key to sign with, created on first use. */
export async function activeSigningKey(db: Queryable): Promise<{ kid: string; key: CryptoKey }> {
  let row = await selectActiveSigningKey(db);
  if (!row) {
    // Two processes starting at once may both create one: harmless, the newest signs and both verify.
    await createSigningKey(db);
    row = (await selectActiveSigningKey(db))!;
  }
  return { kid: row.kid, key: await importOnce(row.kid, 'sign', row.privateJwk) };
}

/** The public key of `kid`, given its JWK text from the database. */
export function verificationKey(kid: string, publicJwk: string): Promise<CryptoKey> {
  return importOnce(kid, 'verify', publicJwk);
}

/**
 * Rotation with overlap: a new key signs from now on; the others stop signing at once and stop
 * verifying after `graceSeconds` (give at least TOKEN_TTL_SECONDS, so no issued token breaks).
 */
export async function rotateSigningKeys(db: Queryable, graceSeconds: number): Promise<string> {
  const kid = await createSigningKey(db);
  await scheduleRetirementOfOthers(db, kid, graceSeconds);
  return kid;
}

/** `GET /.well-known/jwks.json`: the public part of every key that still verifies. */
export async function publicJwks(db: Queryable): Promise<{ keys: JWK[] }> {
  return { keys: (await selectVerifyingKeys(db)).map((k) => JSON.parse(k.publicJwk) as JWK) };
}

/** Every signing key with its state (signing, verifying until retireAt, retired): public facts only. */
export async function listSigningKeys(db: Queryable): Promise<{ kid: string; alg: string; createdAt: string; state: 'signing' | 'verifying' | 'retired'; retireAt?: string }[]> {
  const now = Date.now();
  return (await selectSigningKeys(db)).map((k, i, all) => {
    const retireAt = k.retireAt === null ? undefined : new Date(k.retireAt);
    const signing = retireAt === undefined && all.findIndex((o) => o.retireAt === null) === i;
    const state = signing ? 'signing' : retireAt === undefined || retireAt.getTime() > now ? 'verifying' : 'retired';
    return { kid: k.kid, alg: k.alg, createdAt: new Date(k.createdAt).toISOString(), state, ...(retireAt && { retireAt: retireAt.toISOString() }) };
  });
}
