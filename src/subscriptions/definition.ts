import { OperationOutcomeError, badRequest, parseSearchRequest } from '@medplum/core';
import type { Filter } from '@medplum/core';
import type { Extension, Subscription } from '@medplum/fhirtypes';
import { compileSearch } from '../fhir/search/query.ts';
import { CANONICAL_BASE, SUPPORTED_RESOURCE_TYPES } from '../profiles/index.ts';
import { parseSchedule } from './retry.ts';
import { PAYLOAD_FORMATS } from './formats/index.ts';
import { SIGNATURE_SCHEMES } from './sign.ts';
import type { SignatureScheme } from './sign.ts';
import { findTopic } from './topics.ts';

const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition';
export const BACKPORT_SUBSCRIPTION_PROFILE = `${BACKPORT}/backport-subscription`;
const OWN = `${CANONICAL_BASE}/StructureDefinition`;
/** Our extension URLs, and Medplum's for the same things so that its subscriptions carry over. */
export const SUBSCRIPTION_EXTENSIONS = {
  secret: [`${OWN}/subscription-secret`, 'https://www.medplum.com/fhir/StructureDefinition/subscription-secret'],
  signatureScheme: [`${OWN}/subscription-signature-scheme`],
  retrySchedule: [`${OWN}/subscription-retry-schedule`],
  maxAttempts: [`${OWN}/subscription-max-attempts`, 'https://medplum.com/fhir/StructureDefinition/subscription-max-attempts'],
  payloadFormat: [`${OWN}/subscription-payload-format`],
};

export type PayloadContent = 'empty' | 'id-only' | 'full-resource';

/** Everything delivery needs, parsed once when the Subscription is written (kept in the registry). */
export interface SubscriptionConfig {
  kind: 'classic' | 'backport';
  resourceType: string;
  /** AND-ed search filters the new version must match. */
  filters: Filter[];
  topicUrl?: string;
  interactions: ('create' | 'update' | 'delete')[];
  endpoint: string;
  headers: [string, string][];
  /** classic: `empty` is the R4 ping (POST, no body), `full-resource` a PUT of the resource. */
  content: PayloadContent;
  contentType: string;
  secret?: string;
  signatureScheme: SignatureScheme;
  /** Milliseconds between attempts; absent: the server's DELIVERY_RETRY_SCHEDULE. */
  retrySchedule?: number[];
  maxAttempts?: number;
  heartbeatSeconds?: number;
  /** Backport: most events one notification bundle carries (backport-max-count); absent: 1. */
  maxCount?: number;
  timeoutMs: number;
  payloadFormat: string;
}

const DEFAULT_TIMEOUT_MS = 20_000;
/** A run is at most 1000 notifications (DELIVERY_RUN_SIZE), so no bundle could carry more. */
export const MAX_EVENTS_PER_NOTIFICATION = 1000;

function ext(extensions: Extension[] | undefined, urls: string[]): Extension | undefined {
  return extensions?.find((e) => urls.includes(e.url));
}

const invalid = (message: string, expression?: string): OperationOutcomeError =>
  new OperationOutcomeError(badRequest(message, expression));

/** Parses and checks a Subscription; a 400 OperationOutcome names what is wrong. */
export function parseSubscription(sub: Subscription): SubscriptionConfig {
  const channel = sub.channel;
  if (channel?.type !== 'rest-hook') throw invalid('Only rest-hook channels are supported', 'Subscription.channel.type');
  if (!channel.endpoint || !/^https?:\/\//.test(channel.endpoint)) {
    throw invalid('channel.endpoint must be an http(s) URL', 'Subscription.channel.endpoint');
  }
  const backport = sub.meta?.profile?.includes(BACKPORT_SUBSCRIPTION_PROFILE) || findTopic(sub.criteria) !== undefined;
  const target = backport ? topicTarget(sub) : classicTarget(sub.criteria);

  const headers = (channel.header ?? []).map((h, i) => parseHeader(h, `Subscription.channel.header[${i}]`));
  const payloadContent = ext((channel as { _payload?: { extension?: Extension[] } })._payload?.extension, [`${BACKPORT}/backport-payload-content`])?.valueCode;
  const content: PayloadContent = backport
    ? ((payloadContent as PayloadContent | undefined) ?? 'id-only')
    : channel.payload
      ? 'full-resource'
      : 'empty';
  if (!['empty', 'id-only', 'full-resource'].includes(content)) {
    throw invalid(`Unknown payload content '${content}'`, 'Subscription.channel.payload');
  }

  const payloadFormat = ext(sub.extension, SUBSCRIPTION_EXTENSIONS.payloadFormat)?.valueCode ?? 'fhir';
  const format = Object.hasOwn(PAYLOAD_FORMATS, payloadFormat) ? PAYLOAD_FORMATS[payloadFormat] : undefined;
  if (!format) throw invalid(`Unknown payload format '${payloadFormat}': one of ${Object.keys(PAYLOAD_FORMATS).join(', ')}`, 'Subscription.extension');
  const scheme = (ext(sub.extension, SUBSCRIPTION_EXTENSIONS.signatureScheme)?.valueCode ?? format.signatureScheme ?? 'standard-webhooks') as SignatureScheme;
  if (!SIGNATURE_SCHEMES.includes(scheme)) throw invalid(`Unknown signature scheme '${scheme}'`, 'Subscription.extension');
  if (format.signatureScheme && scheme !== format.signatureScheme) {
    throw invalid(`The ${payloadFormat} payload format is signed with ${format.signatureScheme}, not ${scheme}`, 'Subscription.extension');
  }
  const secret = ext(sub.extension, SUBSCRIPTION_EXTENSIONS.secret)?.valueString;
  if (secret && scheme === 'standard-webhooks' && !/^whsec_[A-Za-z0-9+/=]{20,}$/.test(secret)) {
    throw invalid('A standard-webhooks secret is whsec_ followed by base64 of 24 to 64 random bytes', 'Subscription.extension');
  }
  const scheduleText = ext(sub.extension, SUBSCRIPTION_EXTENSIONS.retrySchedule)?.valueString;
  let retrySchedule: number[] | undefined;
  try {
    retrySchedule = scheduleText ? parseSchedule(scheduleText) : undefined;
  } catch (err) {
    throw invalid((err as Error).message, 'Subscription.extension');
  }
  const maxAttempts = ext(sub.extension, SUBSCRIPTION_EXTENSIONS.maxAttempts)?.valueInteger;
  if (maxAttempts !== undefined && maxAttempts < 1) throw invalid('subscription-max-attempts must be at least 1', 'Subscription.extension');
  const seconds = (url: string): number | undefined => ext(channel.extension, [`${BACKPORT}/${url}`])?.valueUnsignedInt;
  const timeoutSeconds = seconds('backport-timeout');
  const maxCount = ext(channel.extension, [`${BACKPORT}/backport-max-count`])?.valuePositiveInt;
  if (maxCount !== undefined) {
    if (!backport) throw invalid('backport-max-count applies to Backport subscriptions (classic ones notify one change at a time)', 'Subscription.channel.extension');
    if (!Number.isInteger(maxCount) || maxCount < 1 || maxCount > MAX_EVENTS_PER_NOTIFICATION) {
      throw invalid(`backport-max-count must be a whole number from 1 to ${MAX_EVENTS_PER_NOTIFICATION}`, 'Subscription.channel.extension');
    }
  }

  return {
    kind: backport ? 'backport' : 'classic',
    ...target,
    endpoint: channel.endpoint,
    headers,
    content,
    contentType: channel.payload ?? 'application/fhir+json',
    ...(secret && { secret }),
    signatureScheme: scheme,
    ...(retrySchedule && { retrySchedule }),
    ...(maxAttempts !== undefined && { maxAttempts }),
    ...(seconds('backport-heartbeat-period') && { heartbeatSeconds: seconds('backport-heartbeat-period') }),
    ...(maxCount !== undefined && maxCount > 1 && { maxCount }),
    timeoutMs: timeoutSeconds ? Math.min(timeoutSeconds * 1000, 60_000) : DEFAULT_TIMEOUT_MS,
    payloadFormat,
  };
}

/** RFC 9110 §5.1: a field name is a token. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 9110 §5.5: visible characters, spaces and tabs; never CR, LF or NUL (no header injection). */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** Headers that frame the request or that we set ourselves: a subscription may not send its own. */
const RESERVED_HEADERS = new Set([
  'host', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer',
  'expect', 'proxy-authorization', 'proxy-connection', 'user-agent',
  'webhook-id', 'webhook-timestamp', 'webhook-signature', 'x-sender-signature', 'x-sender-timestamp', 'x-curacel-signature',
]);

/**
 * One `channel.header` entry, `Name: value`, refused when the worker could not send it (Node
 * throws on an invalid name or value, and the notification would then never go out).
 */
function parseHeader(entry: string, expression: string): [string, string] {
  const colon = entry.indexOf(':');
  if (colon < 1) throw invalid(`channel.header must be 'Name: value'`, expression);
  const name = entry.slice(0, colon).trim();
  const value = entry.slice(colon + 1).trim();
  if (!HEADER_NAME.test(name)) throw invalid(`channel.header name '${name}' is not a valid HTTP header name`, expression);
  if (!HEADER_VALUE.test(value)) throw invalid(`channel.header '${name}' has characters an HTTP header value cannot hold (CR, LF, NUL or other controls)`, expression);
  if (RESERVED_HEADERS.has(name.toLowerCase())) throw invalid(`channel.header may not set ${name}: the server sets it`, expression);
  return [name, value];
}

type Target = Pick<SubscriptionConfig, 'resourceType' | 'filters' | 'topicUrl' | 'interactions'>;

/** Classic R4: criteria is a search; only new versions are matched, so deletes notify nothing. */
function classicTarget(criteria: string | undefined): Target {
  const search = parseCriteria(criteria, 'Subscription.criteria');
  return { resourceType: search.resourceType, filters: search.filters ?? [], interactions: ['create', 'update'] };
}

/** Backport: criteria is a topic canonical; backport-filter-criteria extensions narrow it (AND). */
function topicTarget(sub: Subscription): Target {
  const topic = findTopic(sub.criteria ?? '');
  if (!topic) throw invalid(`Unknown subscription topic '${sub.criteria}'`, 'Subscription.criteria');
  const filters = [...topic.filters];
  const criteriaExtensions = (sub as { _criteria?: { extension?: Extension[] } })._criteria?.extension ?? [];
  for (const e of criteriaExtensions.filter((x) => x.url === `${BACKPORT}/backport-filter-criteria`)) {
    const text = e.valueString ?? '';
    const search = parseCriteria(text.includes('?') ? text : `${topic.resourceType}?${text}`, 'Subscription.criteria.extension');
    if (search.resourceType !== topic.resourceType) {
      throw invalid(`Filter '${text}' is not on ${topic.resourceType}`, 'Subscription.criteria.extension');
    }
    filters.push(...(search.filters ?? []));
  }
  return { resourceType: topic.resourceType, filters, topicUrl: topic.url, interactions: [...topic.interactions] };
}

function parseCriteria(criteria: string | undefined, expression: string): ReturnType<typeof parseSearchRequest> {
  if (!criteria || !/^[A-Z][A-Za-z]+(\?.*)?$/.test(criteria)) throw invalid(`Invalid criteria '${criteria}'`, expression);
  const search = parseSearchRequest(criteria);
  if (!SUPPORTED_RESOURCE_TYPES.includes(search.resourceType)) {
    throw invalid(`Resource type ${search.resourceType} is not supported`, expression);
  }
  try {
    compileSearch('validation', search); // unknown parameters and bad values are refused here
  } catch (err) {
    if (err instanceof OperationOutcomeError) throw invalid(`Invalid criteria: ${err.message}`, expression);
    throw err;
  }
  return search;
}
