import { z } from 'zod';

/**
 * Options of a webhook source of kind x12-835 (a clearinghouse or payer posting 835 files):
 * HTTP Basic (a username and password we generate) or an OAuth 2.0 bearer token from our
 * /oauth2/token, never both; `requiredHeader` as for InstaMed (mutual TLS at a trusted proxy).
 */
const HeaderName = z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'an HTTP header name');

export const X12SourceOptions = z
  .object({
    auth: z.enum(['basic', 'oauth']).default('basic'),
    requiredHeader: z.object({ name: HeaderName, value: z.string().min(1).max(512) }).strict().nullable().default(null),
  })
  .strict();
