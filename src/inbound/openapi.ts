import { z } from 'zod';
import { ApiTokenBody } from '../auth/index.ts';
import type { Sender } from './sender.ts';

/** /api/token's answers (auth/token-routes.ts; the Cair contract's token endpoint). */
const TokenResponse = z
  .object({
    accessToken: z.string().meta({ description: 'A JWT (ES256) to send as Authorization: Bearer <accessToken>.' }),
    tokenType: z.literal('Bearer'),
    expiresIn: z.number().int().meta({ description: 'Seconds until the token expires (TOKEN_TTL_SECONDS).' }),
  })
  .meta({ title: 'TokenResponse' });

/**
 * The OpenAPI 3.1 document of the /api routes: the token endpoint and every sender's webhooks, from
 * the same zod schemas that validate them (zod 4's z.toJSONSchema emits JSON Schema 2020-12, the
 * dialect OpenAPI 3.1 uses). Served at GET /api/openapi.json.
 */
export function openApiDocument(senders: readonly Sender[], version: string): Record<string, unknown> {
  const parts = senders.map((s) => s.openapi());
  return {
    openapi: '3.1.0',
    info: {
      title: 'fhir-billing API',
      version,
      description:
        'Webhooks in (payment processors, payers, health funds) and the token endpoint they authenticate with. ' +
        'The FHIR R4 API is under /fhir and describes itself at GET /fhir/metadata.',
    },
    paths: {
      '/api/token': {
        post: {
          operationId: 'postToken',
          tags: ['Authentication'],
          summary: 'Get an access token with a client id and secret',
          requestBody: { required: true, content: { 'application/json': { schema: ref('TokenRequest') } } },
          responses: {
            '200': { description: 'An access token', content: { 'application/json': { schema: ref('TokenResponse') } } },
            '400': { description: 'The request body is invalid', content: { 'application/json': { schema: ref('InvalidRequestBody') } } },
            '401': { description: 'Unknown client or wrong secret', content: { 'application/json': { schema: ref('Error') } } },
            '429': { description: 'Too many failed attempts (Retry-After says when to try again)', content: { 'application/json': { schema: ref('Error') } } },
          },
        },
      },
      ...Object.assign({}, ...parts.map((p) => p.paths)),
    },
    components: {
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'The accessToken from POST /api/token (or access_token from POST /oauth2/token).',
        },
        basicAuth: {
          type: 'http',
          scheme: 'basic',
          description: 'A webhook source\'s generated username and password (POST /admin/webhook-sources).',
        },
      },
      schemas: {
        TokenRequest: jsonSchema(ApiTokenBody.meta({ title: 'TokenRequest', description: 'The API client\'s credentials (from the admin API or `fhir-billing clients create`).' }), 'input'),
        TokenResponse: jsonSchema(TokenResponse, 'output'),
        ...Object.assign({}, ...parts.map((p) => p.schemas)),
      },
    },
  };
}

export function ref(name: string): { $ref: string } {
  return { $ref: `#/components/schemas/${name}` };
}

/** A zod schema as an OpenAPI 3.1 schema object (JSON Schema 2020-12, without its `$schema`). */
export function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, target: 'draft-2020-12' }) as Record<string, unknown>;
  return rest;
}
