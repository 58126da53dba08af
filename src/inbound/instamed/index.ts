import type { Sender } from '../sender.ts';
import { SOURCE } from './commands.ts';
import { instamedRoutes } from './routes.ts';

const text = (description: string) => ({ description, content: { 'text/plain': { schema: { type: 'string' } } } });
const fieldsSchema = { type: 'object', additionalProperties: { type: ['string', 'null'] }, description: 'The sender\'s flat field list (README: "InstaMed field map").' };

/** InstaMed: the card processor's transaction webhook (shared/seeds/002), one URL per webhook source. */
export const instamed: Sender = {
  name: SOURCE,
  router: instamedRoutes,
  openapi: () => ({
    schemas: {},
    paths: {
      '/api/webhooks/instamed/{sourceId}': {
        post: {
          operationId: 'postInstaMedTransaction',
          tags: ['Webhooks'],
          summary: 'An InstaMed transaction or payment-plan notification',
          description:
            'Every payment trigger (Approved, Declined, Voided, Refunded, Returned, Chargeback, Settlement, Error) and payment-plan trigger ' +
            '(Created, Updated), as JSON, XML or NVP. Authenticated as the webhook source says: HTTP Basic with its generated credentials, ' +
            'or an OAuth 2.0 bearer token of a client of the same tenant with the webhook scope. The same message again (same transaction id, ' +
            'status and action) answers 200 and changes nothing.',
          security: [{ basicAuth: [] }, { bearerAuth: [] }],
          parameters: [{ name: 'sourceId', in: 'path', required: true, schema: { type: 'string' }, description: 'The id from POST /admin/webhook-sources.' }],
          requestBody: {
            required: true,
            content: {
              'application/json': { schema: fieldsSchema },
              'application/xml': { schema: { type: 'string', description: 'One root element whose child elements are the fields. No DOCTYPE or entities.' } },
              'text/xml': { schema: { type: 'string' } },
              'application/x-www-form-urlencoded': { schema: fieldsSchema },
            },
          },
          responses: {
            '200': text('Stored (what it did, in one line)'),
            '400': text('Not stored: the problem, in one line (also the reason phrase)'),
            '401': text('Bad credentials, or no verified client certificate when the source requires one'),
            '403': text('Address not allowed, or the source is disabled'),
            '404': text('Unknown webhook source'),
            '413': text('Body over 1 MiB'),
            '415': text('Not JSON, XML or NVP'),
            '500': text('Not stored: we failed; retry'),
          },
        },
      },
    },
  }),
};
