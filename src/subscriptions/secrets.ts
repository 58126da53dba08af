import { OperationOutcomeError, badRequest } from '@medplum/core';
import type { Extension, Resource, Subscription } from '@medplum/fhirtypes';
import type { Queryable } from '../db/index.ts';
import { selectCurrent } from '../fhir/storage.ts';
import { SUBSCRIPTION_EXTENSIONS } from './definition.ts';

/**
 * A Subscription's signing secret is write-only, as Stripe and Svix treat theirs: whoever may read
 * Subscriptions must not be able to forge its notifications. The stored resource keeps the secret
 * (the registry the delivery worker signs with is derived from it), but every answer shows it as
 * REDACTED_SECRET, except the answer to the write that stored the value it was sent. Writing
 * REDACTED_SECRET back (a read, edited, PUT again, or patched) keeps the stored secret; leaving the
 * extension out removes it.
 */
export const REDACTED_SECRET = '[redacted]';

const isSecret = (e: Extension): boolean => SUBSCRIPTION_EXTENSIONS.secret.includes(e.url) && typeof e.valueString === 'string';

/**
 * The versions a write stored with the secret it was sent (not one it kept by sending the mask):
 * only the answer to that write shows it. Marked by identity, as the repository marks what it
 * created, so nothing else in a request (a patch's other values, a batch's other entries, the match
 * of an If-None-Exist) can unmask a stored secret by guessing it. Weak: no leak.
 */
const sentByItsWrite = new WeakSet<Resource>();

/** `sub`, marked as carrying the secret its write was sent, so that write's answer shows it. */
export function showSecretInAnswer<T extends Resource>(sub: T): T {
  sentByItsWrite.add(sub);
  return sub;
}

/** `body` with every Subscription secret masked but those of the Subscriptions `shows` picks; unchanged objects are reused. */
export function concealSecrets<T>(body: T, shows: (sub: Subscription) => boolean = () => false): T {
  return visitSubscriptions(body, (sub) => {
    if (!sub.extension?.some(isSecret) || shows(sub)) return sub;
    const extension = sub.extension.map((e) => (isSecret(e) ? { ...e, valueString: REDACTED_SECRET } : e));
    return { ...sub, extension };
  });
}

/** An answer of the FHIR API as its caller may see it: only a secret its own write set is shown. */
export function concealAnswer<T>(answer: T): T {
  return concealSecrets(answer, (sub) => sentByItsWrite.has(sub));
}

/**
 * A write that sends REDACTED_SECRET back means "keep the secret": it gets the stored one (a new
 * object; `sub` itself when nothing is kept). Refused when there is none to keep (a new
 * Subscription, or one whose secret was removed).
 */
export async function restoreSecret(conn: Queryable, tenantId: string, sub: Subscription): Promise<Subscription> {
  const index = sub.extension?.findIndex((e) => isSecret(e) && e.valueString === REDACTED_SECRET) ?? -1;
  if (index < 0) return sub;
  const current = sub.id ? await selectCurrent(conn, { tenantId, resourceType: 'Subscription', id: sub.id }) : undefined;
  const stored = current && !current.deleted ? (JSON.parse(current.content) as Subscription) : undefined;
  const secret = stored?.extension?.find((e) => isSecret(e) && e.url === sub.extension![index].url)?.valueString;
  if (!secret || secret === REDACTED_SECRET) {
    throw new OperationOutcomeError(
      badRequest(`The subscription secret is write-only; '${REDACTED_SECRET}' keeps a stored one, and this Subscription has none: send the secret itself`, 'Subscription.extension'),
    );
  }
  const extension = sub.extension!.map((e, i) => (i === index ? { ...e, valueString: secret } : e));
  return { ...sub, extension };
}

type Visit = (sub: Subscription) => Subscription;
const MAX_DEPTH = 32;

/**
 * Applies `visit` to every Subscription in a FHIR body: the body itself, Bundle entries (search,
 * history, batch and notification Bundles, nested ones too), Parameters (operation answers) and
 * contained resources. Returns the same object where nothing changed. Our answers nest a few levels
 * (a history Bundle in a Parameters at most); a request body deeper than MAX_DEPTH is not looked into.
 */
function visitSubscriptions<T>(value: T, visit: Visit, depth = 0): T {
  if (!value || typeof value !== 'object' || Array.isArray(value) || depth > MAX_DEPTH) return value;
  let resource = value as unknown as Resource & Record<string, unknown>;
  if (typeof resource.resourceType !== 'string') return value;
  const replace = (key: string, list: unknown, each: (item: any) => any): void => {
    if (!Array.isArray(list)) return;
    const mapped = list.map(each);
    if (mapped.some((m, i) => m !== list[i])) resource = { ...resource, [key]: mapped };
  };
  replace('contained', resource.contained, (c) => visitSubscriptions(c, visit, depth + 1));
  if (resource.resourceType === 'Bundle') {
    replace('entry', resource.entry, (e) => {
      if (!e || typeof e !== 'object') return e;
      const r = visitSubscriptions(e.resource, visit, depth + 1);
      const outcome = visitSubscriptions(e.response?.outcome, visit, depth + 1);
      if (r === e.resource && outcome === e.response?.outcome) return e;
      return { ...e, ...(e.resource !== undefined && { resource: r }), ...(e.response && { response: { ...e.response, outcome } }) };
    });
  }
  if (resource.resourceType === 'Parameters') replace('parameter', resource.parameter, (p) => visitParameter(p, visit, depth + 1));
  if (resource.resourceType === 'Subscription') resource = visit(resource as unknown as Subscription) as unknown as typeof resource;
  return resource as unknown as T;
}

function visitParameter(p: any, visit: Visit, depth: number): any {
  if (!p || typeof p !== 'object' || depth > MAX_DEPTH) return p;
  const r = visitSubscriptions(p.resource, visit, depth + 1);
  const part = Array.isArray(p.part) ? p.part.map((x: any) => visitParameter(x, visit, depth + 1)) : p.part;
  const partChanged = Array.isArray(p.part) && part.some((x: any, i: number) => x !== p.part[i]);
  if (r === p.resource && !partChanged) return p;
  return { ...p, ...(p.resource !== undefined && { resource: r }), ...(partChanged && { part }) };
}
