import type { SearchRequest } from '@medplum/core';
import { CANONICAL_BASE } from '../profiles/index.ts';

/**
 * The subscription topics this server offers (R4 Subscriptions Backport IG: the topic canonical
 * goes in Subscription.criteria). Each names the type it watches, the interactions that trigger
 * it and, where the topic is narrower than the type, the filter every notification must pass.
 */
export interface SubscriptionTopic {
  name: string;
  url: string;
  title: string;
  resourceType: string;
  interactions: readonly ('create' | 'update' | 'delete')[];
  /** Search filters the resource must also match (e.g. ClaimResponse use=claim). */
  filters: NonNullable<SearchRequest['filters']>;
}

const ALL = ['create', 'update', 'delete'] as const;

function topic(name: string, title: string, resourceType: string, filters: SubscriptionTopic['filters'] = []): SubscriptionTopic {
  return { name, url: `${CANONICAL_BASE}/SubscriptionTopic/${name}`, title, resourceType, interactions: ALL, filters };
}

export const SUBSCRIPTION_TOPICS: readonly SubscriptionTopic[] = [
  topic('claim-changed', 'A Claim was created, updated or deleted', 'Claim'),
  topic('claim-adjudicated', 'A claim was adjudicated (ClaimResponse use=claim)', 'ClaimResponse', [
    { code: 'use', operator: 'eq', value: 'claim' },
  ]),
  topic('pre-authorization-decided', 'A pre-authorization was decided (ClaimResponse use=preauthorization)', 'ClaimResponse', [
    { code: 'use', operator: 'eq', value: 'preauthorization' },
  ]),
  topic('patient-payment', 'A patient payment was recorded (PaymentReconciliation)', 'PaymentReconciliation'),
  topic('patient-credit', 'A PatientCredit was created or changed', 'PatientCredit'),
];

export function findTopic(url: string): SubscriptionTopic | undefined {
  return SUBSCRIPTION_TOPICS.find((t) => t.url === url);
}

/** A topic as a resource clients can read: R5's SubscriptionTopic shape (R4 has no such type). */
export function topicResource(t: SubscriptionTopic): Record<string, unknown> {
  return {
    resourceType: 'SubscriptionTopic',
    id: t.name,
    url: t.url,
    title: t.title,
    status: 'active',
    resourceTrigger: [
      { resource: `http://hl7.org/fhir/StructureDefinition/${t.resourceType}`, supportedInteraction: t.interactions },
    ],
    canFilterBy: [{ resource: t.resourceType, filterParameter: '*', description: `any ${t.resourceType} search parameter` }],
    notificationShape: [{ resource: t.resourceType }],
  };
}
