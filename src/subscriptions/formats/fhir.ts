import { renderDelivery } from '../render.ts';
import type { PayloadFormat } from './format.ts';

/** The default: R4 rest-hook and Backport IG notification bundles, as render.ts draws them. */
export const fhirFormat: PayloadFormat = {
  code: 'fhir',
  needsResource: (ctx) => ctx.config.content === 'full-resource',
  render: async ({ type, event }, ctx) => [renderDelivery(type, ctx, event)],
};
