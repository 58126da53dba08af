import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, Parameters, ParametersParameter, Resource } from '@medplum/fhirtypes';
import type { SubscriptionConfig } from './definition.ts';
import { concealSecrets } from './secrets.ts';
import type { NotificationType } from './store.ts';

const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition';

/** An event as notifications describe it: its number, when, and the version it is about. */
export interface NotificationEvent {
  eventNumber: number;
  occurredAt: Date;
  resourceType: string;
  resourceId: string;
  interaction: string;
  /** The version's JSON, for full-resource payloads (absent after a delete). */
  resource?: Resource;
}

export interface OutboundRequest {
  method: 'POST' | 'PUT';
  url: string;
  body: string;
  contentType?: string;
}

export interface StatusContext {
  subscriptionUrl: string;
  status: string;
  config: SubscriptionConfig;
  eventsSinceStart: number;
}

/**
 * Classic R4 rest-hook: no payload is an empty POST (the "ping"); a payload is a PUT of the
 * resource to [endpoint]/[type]/[id]. Backport: a history Bundle led by SubscriptionStatus.
 */
export function renderDelivery(type: NotificationType, ctx: StatusContext, event: NotificationEvent | undefined): OutboundRequest {
  const { config } = ctx;
  if (config.kind === 'classic') {
    if (config.content === 'full-resource' && event?.resource) {
      const base = config.endpoint.replace(/\/$/, '');
      return { method: 'PUT', url: `${base}/${event.resourceType}/${event.resourceId}`, body: JSON.stringify(concealSecrets(event.resource)), contentType: config.contentType };
    }
    return { method: 'POST', url: config.endpoint, body: '' };
  }
  const bundle = notificationBundle(type, ctx, event ? [event] : []);
  return { method: 'POST', url: config.endpoint, body: JSON.stringify(bundle), contentType: config.contentType };
}

/** A Backport IG notification Bundle (type history); also what $events answers with. */
export function notificationBundle(
  type: NotificationType | 'query-event' | 'query-status',
  ctx: StatusContext,
  events: NotificationEvent[],
): Bundle {
  const statusId = randomUUID();
  const content = ctx.config.content;
  const entries: BundleEntry[] =
    content === 'empty'
      ? []
      : events.map((e) => {
          const fullUrl = `${baseOf(ctx.subscriptionUrl)}/${e.resourceType}/${e.resourceId}`;
          const method = e.interaction === 'delete' ? 'DELETE' : e.interaction === 'create' ? 'POST' : 'PUT';
          return {
            fullUrl,
            ...(content === 'full-resource' && e.resource && { resource: concealSecrets(e.resource) }),
            request: { method, url: method === 'POST' ? e.resourceType : `${e.resourceType}/${e.resourceId}` },
          };
        });
  return {
    resourceType: 'Bundle',
    id: randomUUID(),
    type: 'history',
    timestamp: new Date().toISOString(),
    meta: { profile: [`${BACKPORT}/backport-subscription-notification-r4`] },
    entry: [
      {
        fullUrl: `urn:uuid:${statusId}`,
        resource: subscriptionStatus(statusId, type, ctx, events),
        request: { method: 'GET', url: `${ctx.subscriptionUrl}/$status` },
        response: { status: '200' },
      },
      ...entries,
    ],
  };
}

/** The SubscriptionStatus Parameters (backport-subscription-status-r4). */
export function subscriptionStatus(id: string, type: string, ctx: StatusContext, events: NotificationEvent[]): Parameters {
  const parameter: ParametersParameter[] = [
    { name: 'subscription', valueReference: { reference: ctx.subscriptionUrl } },
    ...(ctx.config.topicUrl ? [{ name: 'topic', valueCanonical: ctx.config.topicUrl }] : []),
    { name: 'status', valueCode: ctx.status },
    { name: 'type', valueCode: type },
    { name: 'events-since-subscription-start', valueString: String(ctx.eventsSinceStart) },
    ...events.map((e) => ({
      name: 'notification-event',
      part: [
        { name: 'event-number', valueString: String(e.eventNumber) },
        { name: 'timestamp', valueInstant: e.occurredAt.toISOString() },
        ...(ctx.config.content !== 'empty'
          ? [{ name: 'focus', valueReference: { reference: `${baseOf(ctx.subscriptionUrl)}/${e.resourceType}/${e.resourceId}` } }]
          : []),
      ],
    })),
  ];
  return {
    resourceType: 'Parameters',
    id,
    meta: { profile: [`${BACKPORT}/backport-subscription-status-r4`] },
    parameter,
  };
}

function baseOf(subscriptionUrl: string): string {
  return subscriptionUrl.replace(/\/Subscription\/[^/]+$/, '');
}
