import { OperationOutcomeError, badRequest } from '@medplum/core';
import type { Extension, Resource, Subscription } from '@medplum/fhirtypes';
import type { Queryable } from '../db/index.ts';
import { selectCurrent } from '../fhir/storage.ts';
import { SUBSCRIPTION_EXTENSIONS } from './definition.ts';

/**
 * A Subscription's signing secret is write-only, as Stripe and Svix treat theirs: whoever may read
 * Subscriptions must not be able to forge its notifications. The stored resource keeps the secret
 * (the registry the delivery worker signs with is derived from it), but every answer shows it as
 * REDACTED_SECRET, except the answer to the write that sent it. Writing REDACTED_SECRET back (a
 * read, edited, PUT again) keeps the stored secret; leaving the extension out removes it.
 */
export const REDACTED_SECRET = '[redacted]';

const isSecret = (e: Extension): boolean => SUBSCRIPTION_EXTENSIONS.secret.includes(e.url) && typeof e.valueString === 'string';

/**
 * The secrets a request body sets: those of the Subscriptions it writes (itself, or in a batch or
 * transaction Bundle), or any string of a JSON Patch. Only these may be shown in its answer, so an
 * answer never confirms a guess made anywhere else in a request. Iterative over a patch, as it may
 * nest deeper than the stack.
 */
export function secretsSent(body: unknown): Set<string> {
  const found = new Set<string>();
  if (Array.isArray(body)) {
    const stack: unknown[] = [body];
    while (stack.length > 0) {
      const value = stack.pop();
      if (typeof value === 'string') found.add(value);
      else if (value && typeof value === 'object') for (const item of Array.isArray(value) ? value : Object.values(value)) stack.push(item);
    }
  } else {
    visitSubscriptions(body, (sub) => {
      for (const e of sub.extension ?? []) if (isSecret(e)) found.add(e.valueString!);
      return sub;
    });
  }
  found.delete(REDACTED_SECRET);
  return found;
}

/** `body` with every Subscription secret masked but those in `shown`; unchanged objects are reused. */
export function concealSecrets<T>(body: T, shown: { has(value: string): boolean } = new Set()): T {
  return visitSubscriptions(body, (sub) => {
    if (!sub.extension?.some((e) => isSecret(e) && !shown.has(e.valueString!))) return sub;
    const extension = sub.extension.map((e) => (isSecret(e) && !shown.has(e.valueString!) ? { ...e, valueString: REDACTED_SECRET } : e));
    return { ...sub, extension };
  });
}

/** An answer of the FHIR API as its caller may see it: only the secrets it sent are shown. */
export function concealAnswer<T>(answer: T, requestBody: unknown): T {
  let sent: Set<string> | undefined; // walked only when a secret is found: most answers have none
  return concealSecrets(answer, { has: (value) => (sent ??= secretsSent(requestBody)).has(value) });
}

/**
 * A write that sends REDACTED_SECRET back means "keep the secret": it gets the stored one. Refused
 * when there is none to keep (a new Subscription, or one whose secret was removed).
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
