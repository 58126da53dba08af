import { z } from 'zod';

/**
 * The options of the two Curacel kinds (claims-vetting, pre-authorization). Every source has a
 * signing secret (x-curacel-signature); `acceptUnsigned` lets posts without the header through,
 * only when set explicitly, for a sender that has not been given the secret yet (a bad signature
 * is refused whatever it says). The payloads name no currency: it is the source's.
 */
export const CuracelOptions = z
  .object({
    acceptUnsigned: z.boolean().default(false),
    currency: z.string().regex(/^[A-Z]{3}$/, 'an ISO 4217 code such as NGN').default('NGN'),
  })
  .strict();

export type CuracelOptions = z.output<typeof CuracelOptions>;

/** What the mapping needs of a source. */
export interface CuracelSource {
  id: string;
  name: string;
  currency: string;
  /** The source's claim-identifier system, or the tenant's. */
  claimIdentifierSystem: string;
}
