import { timingSafeEqual } from 'node:crypto';
import type { Request } from 'express';
import type { AuthDeps } from '../../auth/index.ts';
import { signedMessage } from '../../formats/tyro.ts';
import { addressIn, parseCidrs } from '../../net/addresses.ts';
import { TOO_MANY, underFailureLimit } from '../sources/authenticate.ts';
import { hmacSha256HexMatches, signingSecretOf } from '../sources/signing.ts';
import type { SourceRow } from '../sources/store.ts';
import { sha256 } from './options.ts';
import type { TyroOptions } from './options.ts';

/**
 * Who may post to a `tyro` source (research §4 pitfalls 1-5). Always: the source is enabled and
 * the caller's address allowed (403), and the required header, when the source has one (401).
 * Then either a signed POST: X-Sender-Timestamp (an ISO instant, within the source's tolerance)
 * and X-Sender-Signature = hex HMAC-SHA256 of the timestamp exactly as sent followed by the raw
 * body, compared in constant time; or, at the token URL, the source's URL token (its SHA-256
 * compared in constant time). Bad signatures and wrong tokens are limited as bad Basic passwords
 * are, per source and address (429 with Retry-After past the limit: sources/authenticate.ts). Headers are read
 * through req.get, which ignores case (the sender's own sample reads "X-Sender-Timestamp" from
 * Node's lower-cased headers and so signs "undefined…").
 */
export interface Refusal {
  status: 401 | 403 | 429;
  message: string;
  /** With 429: the seconds until the next attempt is taken. */
  retryAfter?: number;
}

const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/;

export async function authenticateTyro(
  req: Request,
  source: SourceRow,
  deps: AuthDeps,
  body: Buffer,
  urlToken: string | undefined,
  now: Date = new Date(),
): Promise<Refusal | undefined> {
  if (!source.enabled) return { status: 403, message: 'This webhook source is disabled' };
  if (source.allowedIps.length > 0 && !addressIn(req.ip, parseCidrs(source.allowedIps))) {
    return { status: 403, message: `Address ${req.ip ?? 'unknown'} is not allowed for this webhook source` };
  }
  const options = source.options as TyroOptions;
  if (options.requiredHeaderHash) {
    const given = req.get(options.requiredHeaderHash.name);
    if (given === undefined || !sameHex(sha256(given), options.requiredHeaderHash.valueSha256)) return { status: 401, message: `The ${options.requiredHeaderHash.name} header is missing or wrong` };
  }
  if (urlToken !== undefined) {
    const expected = options.urlTokenSha256;
    if (!expected) return { status: 401, message: 'This source takes no unsigned webhooks (it has no URL token)' };
    // A guessed token costs what a guessed signature does, against the same allowance.
    const checked = await underFailureLimit(req, source, deps, async (): Promise<Refusal | undefined> =>
      sameHex(sha256(urlToken), expected) ? undefined : { status: 401, message: 'Invalid URL token' });
    return checked.limited ? { status: 429, message: TOO_MANY, retryAfter: checked.retryAfter } : checked.failure;
  }
  if (options.signed === false) return { status: 401, message: 'This source takes unsigned webhooks at its token URL only' };
  return checkSignature(req, source, deps, body, options, now);
}

async function checkSignature(req: Request, source: SourceRow, deps: AuthDeps, body: Buffer, options: TyroOptions, now: Date): Promise<Refusal | undefined> {
  const timestamp = req.get('x-sender-timestamp');
  const signature = req.get('x-sender-signature');
  if (!timestamp || !signature) return { status: 401, message: 'X-Sender-Timestamp and X-Sender-Signature are required' };
  // The sample shows the value in quotes; whether they are sent is unknown, so both forms are read.
  const bare = timestamp.length > 2 && timestamp.startsWith('"') && timestamp.endsWith('"') ? timestamp.slice(1, -1) : timestamp;
  if (!ISO_INSTANT.test(bare)) return { status: 401, message: 'X-Sender-Timestamp is not an ISO date string (YYYY-MM-DDTHH:MM:SS.sssZ)' };
  // Bad signatures are limited as bad passwords are (sources/authenticate.ts): 429 past the limit.
  const checked = await underFailureLimit(req, source, deps, async (): Promise<Refusal | undefined> => {
    const secret = await signingSecretOf(deps.db, deps.settings, source);
    if (!secret) return { status: 401, message: 'This source has no signing secret' };
    return hmacSha256HexMatches(secret, signedMessage(timestamp, body), signature.trim()) ? undefined : { status: 401, message: 'Invalid X-Sender-Signature' };
  });
  if (checked.limited) return { status: 429, message: TOO_MANY, retryAfter: checked.retryAfter };
  if (checked.failure) return checked.failure;
  const age = (now.getTime() - Date.parse(bare)) / 1000;
  if (age > options.timestampToleranceSeconds) return { status: 401, message: `X-Sender-Timestamp is older than ${options.timestampToleranceSeconds} s` };
  if (-age > options.futureToleranceSeconds) return { status: 401, message: `X-Sender-Timestamp is more than ${options.futureToleranceSeconds} s in the future` };
  return undefined;
}

function sameHex(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}
