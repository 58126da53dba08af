import { evalFhirPathTyped, toTypedValue } from '@medplum/core';
import type { TypedValue } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import { forIndexing, indexedReference, parseReference } from '../references.ts';
import { fhirDateRange } from './dates.ts';
import { COLUMN_PARAMETERS, searchableParameters } from './parameters.ts';
import type { IndexedParameter } from './parameters.ts';
import { phoneticKeys } from './phonetic.ts';

/** The rows a resource contributes to the search index tables (see migrations/001). */
export interface SearchIndexRows {
  token: { code: string; system: string | null; value: string | null }[];
  string: { code: string; value: string; normalized: string }[];
  reference: { code: string; reference: string; targetId: string | null }[];
  date: { code: string; low: string; high: string }[];
  number: { code: string; value: string; system: string | null; unit: string | null }[];
}

/**
 * Evaluates every searchable parameter of the resource's type on it. `localBases` are this
 * server's FHIR bases: references under them are indexed as the local `Type/id` they are.
 */
export function extractSearchIndex(resource: Resource, localBases: readonly string[] = []): SearchIndexRows {
  const rows: SearchIndexRows = { token: [], string: [], reference: [], date: [], number: [] };
  const input = [toTypedValue(forIndexing(resource, localBases))];
  for (const param of searchableParameters(resource.resourceType).values()) {
    if (COLUMN_PARAMETERS.has(param.code)) continue;
    for (const typed of evalFhirPathTyped(param.expression, input)) {
      addValue(rows, param, typed);
    }
  }
  return dedupe(rows);
}

type Obj = Record<string, any>;

function addValue(rows: SearchIndexRows, param: IndexedParameter, { type, value }: TypedValue): void {
  if (value === undefined || value === null) return;
  const { kind, code } = param;
  switch (kind) {
    case 'token':
      // A `code` bound to one code system has that system implicitly (R4 search, token).
      for (const t of tokens(type, value)) rows.token.push({ code, ...t, system: t.system ?? (type === 'code' ? (param.implicitSystem ?? null) : null) });
      return;
    case 'string':
      if (param.phonetic) {
        for (const s of strings(type, value)) for (const key of phoneticKeys(s)) rows.string.push({ code, value: s, normalized: key });
        return;
      }
      for (const s of strings(type, value)) rows.string.push({ code, value: s, normalized: normalizeString(s) });
      return;
    case 'reference': {
      const ref = typeof value === 'string' ? value : (value as Obj).reference;
      if (typeof ref === 'string' && ref) rows.reference.push({ code, ...parseReference(indexedReference(ref)) });
      return;
    }
    case 'date': {
      const range = dateRange(type, value);
      if (range) rows.date.push({ code, ...range });
      return;
    }
    case 'number': {
      const n = typeof value === 'object' ? (value as Obj).value : value;
      if (typeof n !== 'number') return;
      if (typeof value !== 'object') {
        rows.number.push({ code, value: String(n), system: null, unit: null });
        return;
      }
      // Quantity: `system|code` matches system and code; `||x` matches code or unit (R4 search, quantity).
      const obj = value as Obj;
      const unitCode = obj.code ?? obj.currency ?? null;
      rows.number.push({ code, value: String(n), system: obj.system ?? (obj.currency ? 'urn:iso:std:iso:4217' : null), unit: unitCode });
      if (typeof obj.unit === 'string' && obj.unit !== unitCode) rows.number.push({ code, value: String(n), system: null, unit: obj.unit });
    }
  }
}

function tokens(type: string, value: unknown): { system: string | null; value: string | null }[] {
  if (typeof value !== 'object') return [{ system: null, value: String(value) }];
  const v = value as Obj;
  switch (type) {
    case 'CodeableConcept':
      return (v.coding ?? []).map((c: Obj) => ({ system: c.system ?? null, value: c.code ?? null }));
    case 'Coding':
      return [{ system: v.system ?? null, value: v.code ?? null }];
    case 'Identifier':
      return [{ system: v.system ?? null, value: v.value ?? null }];
    case 'ContactPoint':
      return [{ system: v.system ?? null, value: v.value ?? null }];
    default:
      return [];
  }
}

function strings(type: string, value: unknown): string[] {
  if (typeof value === 'string') return [value];
  const v = value as Obj;
  const parts =
    type === 'HumanName'
      ? [v.text, v.family, ...(v.given ?? []), ...(v.prefix ?? []), ...(v.suffix ?? [])]
      : type === 'Address'
        ? [v.text, ...(v.line ?? []), v.city, v.district, v.state, v.postalCode, v.country]
        : [];
  return parts.filter((p): p is string => typeof p === 'string' && p.length > 0);
}

function dateRange(type: string, value: unknown): { low: string; high: string } | undefined {
  if (typeof value === 'string') {
    const r = fhirDateRange(value);
    return r && { low: r.low.toISOString(), high: r.high.toISOString() };
  }
  if (type === 'Period') {
    const v = value as Obj;
    const low = typeof v.start === 'string' ? fhirDateRange(v.start)?.low.toISOString() : undefined;
    const high = typeof v.end === 'string' ? fhirDateRange(v.end)?.high.toISOString() : undefined;
    if (!low && !high) return undefined;
    return { low: low ?? '-infinity', high: high ?? 'infinity' };
  }
  return undefined;
}

/** What the default string search compares: lower case, accents removed. */
export function normalizeString(s: string): string {
  return s.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase();
}

function dedupe(rows: SearchIndexRows): SearchIndexRows {
  const unique = <T>(list: T[]): T[] => {
    const seen = new Set<string>();
    return list.filter((r) => {
      const key = JSON.stringify(r);
      return seen.has(key) ? false : (seen.add(key), true);
    });
  };
  return {
    token: unique(rows.token),
    string: unique(rows.string),
    reference: unique(rows.reference),
    date: unique(rows.date),
    number: unique(rows.number),
  };
}
