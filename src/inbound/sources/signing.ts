import { createHmac, timingSafeEqual } from 'node:crypto';
import { unseal } from '../../auth/index.ts';
import type { SealingSettings } from '../../auth/index.ts';
import type { Queryable } from '../../db/index.ts';
import type { SourceRow } from './store.ts';

/**
 * For senders that sign their posts with an HMAC (Curacel's x-curacel-signature, Tyro's
 * X-Sender-Signature): the source's signing secret, and the one comparison every sender uses.
 * Each sender decides what the message is (the raw body, or a timestamp and the raw body); always
 * the bytes as received, never a re-serialisation.
 */
export async function signingSecretOf(conn: Queryable, settings: SealingSettings, source: SourceRow): Promise<Buffer | undefined> {
  if (source.signingSecretSealed === null) return undefined;
  return Buffer.from(await unseal(conn, settings, source.signingSecretSealed), 'utf8');
}

const HEX_SHA256 = /^[0-9a-f]{64}$/i;

/** Whether `givenHex` is the hex HMAC-SHA256 of `message` under `secret`: constant time, length checked first. */
export function hmacSha256HexMatches(secret: Buffer, message: Buffer | Buffer[], givenHex: string): boolean {
  if (!HEX_SHA256.test(givenHex)) return false;
  const hmac = createHmac('sha256', secret);
  for (const part of Array.isArray(message) ? message : [message]) hmac.update(part);
  const expected = hmac.digest();
  const given = Buffer.from(givenHex, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
