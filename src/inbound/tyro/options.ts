import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';

/**
 * Options of a `tyro` webhook source. POST webhooks are signed (X-Sender-Signature) when
 * `signed`, with the source's signing secret (registry.ts keeps it sealed). GET, PUT and DELETE
 * webhooks carry no signature (research §4): they authenticate by a per-source URL token and the
 * custom header the partner sets in `webhooks[].headers` (e.g. sessionKey); both are given once
 * and kept only as SHA-256 (they are long random values, so a fast hash is enough), never shown.
 * The default tolerance covers the sender's retries (every 15 minutes for 24 hours) plus an
 * hour: a late retry of an event we already have is a harmless duplicate.
 */
const HeaderName = z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'an HTTP header name');
const Secret = z.string().min(24, 'at least 24 characters').max(256).regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces');
const Sha256 = z.string().regex(/^[0-9a-f]{64}$/);
const sha256 = (v: string): string => createHash('sha256').update(v, 'utf8').digest('hex');

export const TyroOptions = z
  .object({
    signed: z.boolean().default(true),
    timestampToleranceSeconds: z.number().int().min(60).max(7 * 86400).default(25 * 3600),
    futureToleranceSeconds: z.number().int().min(0).max(3600).default(300),
    /** Given to set or replace the URL token; kept only as urlTokenSha256. */
    urlToken: Secret.optional(),
    urlTokenSha256: Sha256.nullable().default(null),
    /** Given to set or replace the header; kept only as {name, valueSha256}. null: none required. */
    requiredHeader: z.object({ name: HeaderName, value: Secret }).strict().nullable().optional(),
    requiredHeaderHash: z.object({ name: HeaderName, valueSha256: Sha256 }).strict().nullable().default(null),
    /** The fund when a transaction names none (research §4 funders: medicare, hicaps, patient-funded, ghs; dva, icare). */
    funder: z.string().regex(/^[a-z0-9-]{1,32}$/).default('medicare'),
  })
  .strict()
  .transform(({ urlToken, requiredHeader, ...o }) => ({
    ...o,
    ...(urlToken !== undefined && { urlTokenSha256: sha256(urlToken) }),
    ...(requiredHeader !== undefined && { requiredHeaderHash: requiredHeader && { name: requiredHeader.name, valueSha256: sha256(requiredHeader.value) } }),
  }));

export type TyroOptions = z.output<typeof TyroOptions>;
export { sha256 };

/**
 * New values for the unsigned webhooks' URL token and required header (those the source has), the
 * old ones refused at once: what rotating credentials means for a source whose secrets are kept
 * only as hashes. The values are shown once, for the operator to set at the sender.
 */
export function rotateTyroTokens(options: TyroOptions): { options: TyroOptions; credentials: { urlToken?: string; requiredHeader?: { name: string; value: string } } } | undefined {
  if (!options.urlTokenSha256 && !options.requiredHeaderHash) return undefined;
  const urlToken = options.urlTokenSha256 ? randomBytes(32).toString('base64url') : undefined;
  const header = options.requiredHeaderHash && { name: options.requiredHeaderHash.name, value: randomBytes(32).toString('base64url') };
  return {
    options: {
      ...options,
      ...(urlToken && { urlTokenSha256: sha256(urlToken) }),
      ...(header && { requiredHeaderHash: { name: header.name, valueSha256: sha256(header.value) } }),
    },
    credentials: { ...(urlToken && { urlToken }), ...(header && { requiredHeader: header }) },
  };
}
