import { notificationBundle, renderDelivery } from '../render.ts';
import type { PayloadFormat } from './format.ts';

/**
 * The default: R4 rest-hook and Backport IG notification bundles, as render.ts draws them. A
 * Backport bundle may carry up to the subscription's backport-max-count events.
 */
export const fhirFormat: PayloadFormat = {
  code: 'fhir',
  needsResource: (ctx) => ctx.config.content === 'full-resource',
  render: async ({ type, event }, ctx) => [renderDelivery(type, ctx, event)],
  maxEvents: (config) => (config.kind === 'backport' ? (config.maxCount ?? 1) : 1),
  renderEvents: async (events, ctx) => [
    { method: 'POST', url: ctx.config.endpoint, body: JSON.stringify(notificationBundle('event-notification', ctx, events)), contentType: ctx.config.contentType },
  ],
};
