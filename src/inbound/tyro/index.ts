import type { Sender } from '../sender.ts';
import { SOURCE, tyroRoutes } from './routes.ts';

const json = (description: string) => ({ description, content: { 'application/json': { schema: { type: 'object' } } } });
const sourceId = { name: 'sourceId', in: 'path', required: true, schema: { type: 'string' }, description: 'The id from POST /admin/webhook-sources.' };
const responses = {
  '200': json('Stored: {result: recorded | waiting | stale | unchanged | duplicate | noted, transactionId, claimResponseId?, paymentReconciliationId?}'),
  '400': json('Not stored, final: {error}'),
  '401': json('Bad signature, timestamp, URL token or required header: {error}'),
  '403': json('Address not allowed, or the source is disabled'),
  '404': json('Unknown webhook source'),
  '500': json('Not stored: we failed; the sender retries'),
};
const body = {
  required: false,
  content: { 'application/json': { schema: { type: 'object', description: 'The transaction, bare (event in ?event=) or as {event, transaction}. README: "Tyro Health".' } } },
};

/** Tyro Health (formerly Medipass): health-fund invoice webhooks (shared/seeds/004). */
export const tyro: Sender = {
  name: SOURCE,
  router: tyroRoutes,
  openapi: () => ({
    schemas: {},
    paths: {
      '/api/webhooks/tyro/{sourceId}': {
        post: {
          operationId: 'postTyroEvent',
          tags: ['Webhooks'],
          summary: 'A signed Tyro Health invoice event',
          description: 'X-Sender-Signature: hex HMAC-SHA256 of the X-Sender-Timestamp value followed by the raw body, with the source\'s signing secret.',
          parameters: [sourceId, { name: 'event', in: 'query', required: false, schema: { type: 'string' } }],
          requestBody: body,
          responses,
        },
      },
      '/api/webhooks/tyro/{sourceId}/{urlToken}': Object.fromEntries(
        ['get', 'put', 'post', 'delete'].map((m) => [m, {
          operationId: `${m}TyroUnsignedEvent`,
          tags: ['Webhooks'],
          summary: 'An unsigned Tyro Health webhook (URL token and the required header)',
          parameters: [sourceId, { name: 'urlToken', in: 'path', required: true, schema: { type: 'string' } }, { name: 'event', in: 'query', required: false, schema: { type: 'string' } }],
          requestBody: body,
          responses,
        }]),
      ),
    },
  }),
};
