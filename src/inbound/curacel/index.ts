import type { z } from 'zod';
import { PreAuthorizationDecision, VettingEvent } from '../../formats/curacel.ts';
import { jsonSchema, ref } from '../openapi.ts';
import type { Sender } from '../sender.ts';
import { preAuthorizationInput } from './pre-authorization.ts';
import { curacelRoutes } from './routes.ts';
import type { CuracelKind } from './routes.ts';
import { vettingInput } from './vetting.ts';

/**
 * Curacel Health's two webhooks, one webhook-source kind each: an HMO's claim vetting
 * (shared/seeds/001) and an insurer's pre-authorization decision (shared/seeds/003).
 */
export const CLAIMS_VETTING = 'claims-vetting';
export const PRE_AUTHORIZATION = 'pre-authorization';

const vetting: CuracelKind<VettingEvent> = {
  kind: CLAIMS_VETTING,
  schema: VettingEvent,
  identify: (e) => ({ eventType: e.event, dedupeKey: `claim|${e.data.id}` }),
  input: vettingInput,
};

const preAuthorization: CuracelKind<PreAuthorizationDecision> = {
  kind: PRE_AUTHORIZATION,
  schema: PreAuthorizationDecision,
  identify: (d) => ({ eventType: `pa.${d.status.toLowerCase()}`, dedupeKey: `pa|${d.id_from_insurer}` }),
  input: preAuthorizationInput,
};

const json = (description: string) => ({
  description,
  content: { 'application/json': { schema: { type: 'object', properties: { message: { type: 'string' }, field: { type: ['string', 'null'] } } } } },
});

function openapi(kind: string, operationId: string, summary: string, schemaName: string, schema: z.ZodType) {
  return () => ({
    schemas: { [schemaName]: jsonSchema(schema, 'input') },
    paths: {
      [`/api/webhooks/${kind}/{sourceId}`]: {
        post: {
          operationId,
          tags: ['Webhooks'],
          summary,
          description:
            'Signed with x-curacel-signature, the hex HMAC-SHA256 of the raw body under the source\'s signing secret (unsigned posts only when ' +
            'the source has acceptUnsigned). The same event again answers 200 and changes nothing; an older one than recorded changes nothing.',
          parameters: [{ name: 'sourceId', in: 'path', required: true, schema: { type: 'string' }, description: 'The id from POST /admin/webhook-sources.' }],
          requestBody: { required: true, content: { 'application/json': { schema: ref(schemaName) } } },
          responses: {
            '200': json('Stored (or already stored): {message, event, status, claim, claimCreated, claimResponse}'),
            '400': json('Not stored: {message, field} names the field'),
            '401': json('Missing or wrong x-curacel-signature'),
            '403': json('Address not allowed, or the source is disabled'),
            '404': json('Unknown webhook source'),
            '413': json('Body over 1 MiB'),
            '500': json('Not stored: we failed; retry'),
          },
        },
      },
    },
  });
}

export const claimsVetting: Sender = {
  name: CLAIMS_VETTING,
  router: (deps) => curacelRoutes(vetting, deps),
  openapi: openapi(CLAIMS_VETTING, 'postClaimVetting', 'A Curacel claim vetting event (claim.vetted, claim.pile.vetting_done)', 'CuracelVettingEvent', VettingEvent),
};

export const preAuthorizationDecisions: Sender = {
  name: PRE_AUTHORIZATION,
  router: (deps) => curacelRoutes(preAuthorization, deps),
  openapi: openapi(PRE_AUTHORIZATION, 'postPreAuthorizationDecision', 'A Curacel pre-authorization decision (Approved or Declined)', 'CuracelPreAuthorizationDecision', PreAuthorizationDecision),
};
