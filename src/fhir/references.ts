import { OperationOutcomeError, badRequest, parseSearchRequest, preconditionFailed } from '@medplum/core';
import type { SearchRequest } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';

/**
 * References as R4 reads them (https://hl7.org/fhir/R4/references.html): an absolute URL under one
 * of this server's bases is the local resource `Type/id`; any other absolute URL is another
 * server's and stays as written; `Type?criteria` is a conditional reference, resolved on write.
 */

/** `Type/id`, optionally `/_history/vid`: a relative, literal reference. */
const RELATIVE = /^([A-Z][A-Za-z]{0,63})\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/;
/** `Type?criteria` (R4 transaction rules: conditional references). */
const CONDITIONAL = /^([A-Z][A-Za-z]{0,63})\?(.+)$/;

/** The local form (`Type/id[/_history/v]`) of a reference under one of `bases`; anything else unchanged. */
export function localReference(reference: string, bases: readonly string[]): string {
  for (const base of bases) {
    if (reference.startsWith(base + '/')) {
      const rest = reference.slice(base.length + 1);
      if (RELATIVE.test(rest)) return rest;
    }
  }
  return reference;
}

/** 'Patient/123' (or 'Patient/123/_history/2') → `Patient/123` and its id; other references (URLs, URNs) as written, no id. */
export function parseReference(reference: string): { reference: string; targetId: string | null } {
  const m = RELATIVE.exec(reference);
  return m ? { reference: `${m[1]}/${m[2]}`, targetId: m[2] } : { reference, targetId: null };
}

type Obj = Record<string, unknown>;

/** `https://elsewhere/fhir/Patient/1`: another server's resource, its type and id at the end. */
const ABSOLUTE = /^[a-z][a-z0-9+.-]*:\/\/.+\/([A-Z][A-Za-z]{0,63})\/[A-Za-z0-9\-.]{1,64}(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/;
const FOREIGN_MARK = '?_foreign=';

/**
 * A copy of `resource` for indexing: every `reference` under one of `bases` is relative, so search
 * treats `https://this-server/fhir/Patient/1` as `Patient/1`; another server's absolute URL is
 * disguised as `Patient?_foreign=<url>`, so that core's FHIRPath `resolve() is Patient` (which reads
 * the type before a `/` or `?`) sees its type too. `indexedReference` undoes the disguise. The
 * stored content keeps what the client wrote.
 */
export function forIndexing<T extends Resource>(resource: T, bases: readonly string[]): T {
  let changed = false;
  const visit = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(visit);
    if (!value || typeof value !== 'object') return value;
    const out: Obj = {};
    for (const [k, v] of Object.entries(value as Obj)) {
      if (k === 'reference' && typeof v === 'string') {
        let indexed = localReference(v, bases);
        const foreign = indexed === v ? ABSOLUTE.exec(v) : null;
        if (foreign) indexed = `${foreign[1]}${FOREIGN_MARK}${encodeURIComponent(v)}`;
        if (indexed !== v) changed = true;
        out[k] = indexed;
      } else out[k] = visit(v);
    }
    return out;
  };
  const copy = visit(resource) as T;
  return changed ? copy : resource;
}

/** A reference as `forIndexing` left it, back to what the client wrote (local ones stay relative). */
export function indexedReference(reference: string): string {
  const at = reference.indexOf(FOREIGN_MARK);
  return at > 0 && /^[A-Z][A-Za-z]{0,63}$/.test(reference.slice(0, at)) ? decodeURIComponent(reference.slice(at + FOREIGN_MARK.length)) : reference;
}

/** Every `reference` string of the resource that is a conditional reference, with where it sits. */
function conditionalReferences(resource: Resource): { holder: Obj; criteria: string }[] {
  const found: { holder: Obj; criteria: string }[] = [];
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) return value.forEach(visit);
    if (!value || typeof value !== 'object') return;
    for (const [k, v] of Object.entries(value as Obj)) {
      if (k === 'reference' && typeof v === 'string' && CONDITIONAL.test(v)) found.push({ holder: value as Obj, criteria: v });
      else visit(v);
    }
  };
  visit(resource);
  return found;
}

/**
 * Replaces each conditional reference (`Patient?identifier=sys|val`) with `Type/id` of its one
 * match, in place. No match is a 400 and several a 412 (R4 lets a server choose the 4xx); inside a
 * transaction that fails the whole Bundle, so a conditional reference is never stored as text.
 * `search` runs with the caller's scopes and sees the writes made earlier in the transaction.
 */
export async function resolveConditionalReferences(
  resource: Resource,
  search: (request: SearchRequest) => Promise<Resource[]>,
): Promise<void> {
  const cache = new Map<string, string>();
  for (const { holder, criteria } of conditionalReferences(resource)) {
    let resolved = cache.get(criteria);
    if (!resolved) {
      const request = parseSearchRequest(criteria);
      if (!request.filters?.length) throw new OperationOutcomeError(badRequest(`Conditional reference ${criteria} has no search criteria`));
      const matches = await search({ ...request, count: 2, offset: 0, sortRules: undefined });
      if (matches.length === 0) throw new OperationOutcomeError(badRequest(`Conditional reference ${criteria} matches no resource`));
      if (matches.length > 1) {
        const outcome = preconditionFailed;
        throw new OperationOutcomeError({ ...outcome, issue: [{ ...outcome.issue![0], details: { text: `Conditional reference ${criteria} matches more than one resource` } }] });
      }
      resolved = `${matches[0].resourceType}/${matches[0].id}`;
      cache.set(criteria, resolved);
    }
    holder.reference = resolved;
  }
}
