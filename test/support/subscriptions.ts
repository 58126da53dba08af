import type { Subscription } from '@medplum/fhirtypes';

export const BACKPORT_SD = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition';
export const OWN_SD = 'https://fhir-billing.org/fhir/StructureDefinition';
export const TOPIC = (name: string): string => `https://fhir-billing.org/fhir/SubscriptionTopic/${name}`;

/** A classic R4 rest-hook Subscription. */
export function classicSubscription(criteria: string, endpoint: string, extra: Partial<Subscription> = {}): Subscription {
  return {
    resourceType: 'Subscription',
    status: 'requested',
    reason: 'test',
    criteria,
    channel: { type: 'rest-hook', endpoint },
    ...extra,
  };
}

/** A Backport IG Subscription on one of our topics. */
export function backportSubscription(
  topic: string,
  endpoint: string,
  options: { content?: 'empty' | 'id-only' | 'full-resource'; filters?: string[]; heartbeatSeconds?: number; extension?: Subscription['extension'] } = {},
): Subscription {
  return {
    resourceType: 'Subscription',
    meta: { profile: [`${BACKPORT_SD}/backport-subscription`] },
    status: 'requested',
    reason: 'test',
    criteria: TOPIC(topic),
    ...(options.filters && {
      _criteria: { extension: options.filters.map((f) => ({ url: `${BACKPORT_SD}/backport-filter-criteria`, valueString: f })) },
    }),
    ...(options.extension && { extension: options.extension }),
    channel: {
      type: 'rest-hook',
      endpoint,
      payload: 'application/fhir+json',
      _payload: { extension: [{ url: `${BACKPORT_SD}/backport-payload-content`, valueCode: options.content ?? 'id-only' }] },
      ...(options.heartbeatSeconds && {
        extension: [{ url: `${BACKPORT_SD}/backport-heartbeat-period`, valueUnsignedInt: options.heartbeatSeconds }],
      }),
    },
  } as Subscription;
}

/** Reads a SubscriptionStatus parameter out of a notification Bundle. */
export function statusParam(bundle: any, name: string): any {
  return bundle.entry[0].resource.parameter.find((p: any) => p.name === name);
}

export function eventNumbers(bundle: any): number[] {
  return bundle.entry[0].resource.parameter
    .filter((p: any) => p.name === 'notification-event')
    .map((p: any) => Number(p.part.find((x: any) => x.name === 'event-number').valueString));
}
