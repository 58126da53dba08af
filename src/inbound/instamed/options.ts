import { z } from 'zod';
import { DEFAULT_BILL_ID_FIELD, FieldMapOption } from './fields.ts';

/**
 * The InstaMed kind's own source options. Authentication is HTTP Basic (a username and password we
 * generate) or an OAuth 2.0 bearer token from our /oauth2/token, per source and never both (seed
 * 002). `requiredHeader` is for mutual TLS terminated by a reverse proxy: the header (and value)
 * that proxy sets for a verified client certificate; it counts only from a TRUSTED_PROXIES address.
 */
const HeaderName = z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'an HTTP header name');

export const InstaMedOptions = z
  .object({
    auth: z.enum(['basic', 'oauth']).default('basic'),
    requiredHeader: z.object({ name: HeaderName, value: z.string().min(1).max(512) }).strict().nullable().default(null),
    billIdField: z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/).default(DEFAULT_BILL_ID_FIELD),
    fieldMap: FieldMapOption.default({}),
  })
  .strict();

export type InstaMedOptions = z.output<typeof InstaMedOptions>;
