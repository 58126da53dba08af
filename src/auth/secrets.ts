import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import type { ScryptOptions } from 'node:crypto';

/**
 * Client secrets: 256 random bits shown once, stored only as an scrypt hash. The hash string
 * carries its parameters (`scrypt$N$r$p$salt$hash`), so raising the cost later leaves existing
 * hashes verifiable.
 */
const KEY_LENGTH = 32;
const R = 8;
const P = 1;
/** log2 of scrypt's N: 2^15 costs about 32 MiB and some tens of milliseconds per hash. */
export const DEFAULT_HASH_COST = 15;

export function generateSecret(): string {
  return randomBytes(32).toString('base64url');
}

function derive(secret: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(secret, salt, KEY_LENGTH, { ...options, maxmem: 256 * options.N! * options.r! }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

export async function hashSecret(secret: string, cost = DEFAULT_HASH_COST): Promise<string> {
  const salt = randomBytes(16);
  const N = 2 ** cost;
  const key = await derive(secret, salt, { N, r: R, p: P });
  return ['scrypt', N, R, P, salt.toString('base64url'), key.toString('base64url')].join('$');
}

/** Constant-time comparison of the derived key; a malformed stored hash never matches. */
export async function verifySecret(secret: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !hash) return false;
  const expected = Buffer.from(hash, 'base64url');
  const key = await derive(secret, Buffer.from(salt, 'base64url'), { N: Number(n), r: Number(r), p: Number(p) });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

let dummyHash: Promise<string> | undefined;

/**
 * Spends the same time as a real verification, for an unknown client id, so timing does not tell
 * which client ids exist.
 */
export async function verifyAgainstNothing(secret: string, cost = DEFAULT_HASH_COST): Promise<false> {
  dummyHash ??= hashSecret(generateSecret(), cost);
  await verifySecret(secret, await dummyHash);
  return false;
}
