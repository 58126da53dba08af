import type { Request } from 'express';
import { OperationOutcomeError } from '@medplum/core';
import type { OperationOutcome, Parameters } from '@medplum/fhirtypes';
import { validateResource } from '../profiles/index.ts';
import { z } from 'zod';
import { inspectQuery } from '../http/json-guard.ts';
import { outcome } from './outcomes.ts';
import { malformedQuery } from './search/limits.ts';

/**
 * Requests the FHIR layer refuses before FhirRouter sees them, because the router would act on a
 * guess: it ignores an If-Match it cannot read (and updates without the lock), answers a
 * transaction entry without `request` inside a 200 (and commits the other entries), drops a
 * `_summary` or a modifier it does not know (and answers as if it had not been given), and looks
 * parameter names up on plain objects (`__proto__`, `toString` reach Object.prototype: a 500).
 */

export interface Refusal {
  status: number;
  outcome: OperationOutcome;
}

/** A Bundle POSTed to /fhir holds at most this many entries (each one is a request of its own). */
export const MAX_BUNDLE_ENTRIES = 1000;
/** The only If-Match we take: one version ETag, weak or strong (`W/"3"`, `"3"`). */
const IF_MATCH = /^(?:W\/)?"(\d{1,15})"$/;
/** Modifiers the search compiles (README: token :not, string :exact/:contains, :missing, _include:iterate). */
const MODIFIERS = new Set(['not', 'exact', 'contains', 'missing', 'iterate']);
const SUMMARY_VALUES = new Set(['true', 'false', 'text', 'data', 'count']);
const TOTAL_VALUES = new Set(['none', 'estimate', 'accurate']);

/** zod's message for a value of the wrong type: absent is "is required", present "must be ...". */
const must = (what: string) => (issue: { input?: unknown }) => (issue.input === undefined ? 'is required' : `must be ${what}`);

const invalid = (text: string, expression?: string): Refusal => ({ status: 400, outcome: outcome('error', 'invalid', text, expression) });

export function refuseMalformedRequest(req: Request): Refusal | undefined {
  const queryAt = req.url.indexOf('?');
  const malformed = queryAt < 0 ? undefined : malformedQuery(req.url.slice(queryAt + 1));
  if (malformed) return invalid(malformed);
  const format = req.query._format;
  if (typeof format === 'string' && !/json/.test(format)) {
    return { status: 406, outcome: outcome('error', 'not-supported', `Only JSON is supported, not _format=${format}`) };
  }
  const unsafe = inspectQuery(req.query as Record<string, unknown>);
  if (unsafe) return invalid(unsafe);
  const ifMatch = req.headers['if-match'];
  if (ifMatch !== undefined && ['PUT', 'PATCH', 'DELETE'].includes(req.method) && !IF_MATCH.test(ifMatch)) {
    return invalid(`If-Match must be one version ETag such as W/"3", not ${JSON.stringify(ifMatch)}`);
  }
  const ifNoneExist = req.headers['if-none-exist'];
  if (typeof ifNoneExist === 'string') {
    const params = Object.fromEntries(new URLSearchParams(ifNoneExist));
    const unsafeHeader = inspectQuery(params);
    if (unsafeHeader) return invalid(`If-None-Exist: ${unsafeHeader}`);
    const refusal = refuseSearchParameters(params, 'If-None-Exist');
    if (refusal) return refusal;
  }
  const history = refuseUnknownHistoryParameters(req) ?? (isHistory(req) ? refuseMalformedPaging(req.query as Record<string, unknown>) : undefined);
  if (history) return history;
  const searching = isSearch(req);
  const queryRefusal = refuseSearchParameters(req.query as Record<string, unknown>, 'query', searching);
  if (queryRefusal) return queryRefusal;

  if (!['POST', 'PUT', 'PATCH'].includes(req.method)) return undefined;
  if (req.headers['content-type'] && !req.is(['json', '+json', 'urlencoded'])) {
    return { status: 415, outcome: outcome('error', 'not-supported', 'Send application/fhir+json (or application/json-patch+json for PATCH)') };
  }
  if (req.method === 'POST' && req.path.endsWith('/_search')) {
    return req.body && typeof req.body === 'object' ? refuseSearchParameters(req.body as Record<string, unknown>, 'form', true) : undefined;
  }
  if (req.body === null || typeof req.body !== 'object') {
    return { status: 400, outcome: outcome('error', 'structure', 'The request body must be a JSON resource') };
  }
  const body = req.body as { resourceType?: unknown };
  // Interpolated into messages further on: an object there (with its own toString) would throw.
  if (!Array.isArray(body) && 'resourceType' in body && typeof body.resourceType !== 'string') {
    return { status: 400, outcome: outcome('error', 'structure', 'resourceType must be a string', 'resourceType') };
  }
  if (req.method === 'POST' && isSystemPath(req) && body.resourceType === 'Bundle') return refuseMalformedBundle(body as { entry?: unknown });
  if (req.method === 'POST' && req.path.includes('/$') && body.resourceType === 'Parameters') {
    return refuseMalformedParameters(body) ?? (req.path.endsWith('/$validate') ? undefined : refuseInvalidParameters(body));
  }
  return undefined;
}

/** `/` (batch, transaction) */
function isSystemPath(req: Request): boolean {
  return req.path === '/' || req.path === '';
}

/** What history takes (README: `_since`, `_count`; `_offset` in its paging links): nothing else is ignored silently. */
const HISTORY_PARAMETERS = new Set(['_since', '_at', '_count', '_offset', '_format', '_pretty']);

function isHistory(req: Request): boolean {
  return req.method === 'GET' && /\/_history\/?$/.test(req.path);
}

function refuseUnknownHistoryParameters(req: Request): Refusal | undefined {
  if (!isHistory(req)) return undefined;
  const unknown = Object.keys(req.query).find((k) => !HISTORY_PARAMETERS.has(k));
  return unknown === undefined ? undefined : invalid(`Unknown history parameter ${JSON.stringify(unknown)} (history takes ${[...HISTORY_PARAMETERS].join(', ')})`);
}

/** FHIR dateTime with a 4-digit year (JavaScript also parses `1` or `+275760-09-13`, PostgreSQL does not). */
const DATE_TIME = /^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

function isDateTime(v: string): boolean {
  if (!DATE_TIME.test(v) || v.startsWith('0000')) return false;
  const [y, m = 1, d = 1] = v.slice(0, 10).split('-').map(Number);
  const day = new Date(Date.UTC(y, m - 1, d));
  // Date.UTC maps years below 100 onto 19xx; setUTCFullYear keeps them.
  day.setUTCFullYear(y);
  return day.getUTCMonth() === m - 1 && day.getUTCDate() === d && !Number.isNaN(Date.parse(v.length <= 10 ? `${v.slice(0, 10)}` : v));
}

/** `_count` and `_offset` as plain integers a database takes; `_since`/`_at` as FHIR dateTimes. */
function refuseMalformedPaging(query: Record<string, unknown>): Refusal | undefined {
  for (const name of ['_count', '_offset']) {
    const values = query[name] === undefined ? [] : [query[name]].flat().map(String);
    if (values.some((v) => !/^\d{1,9}$/.test(v))) return invalid(`${name} must be a non-negative integer below 10^9, not ${values.join(',')}`);
  }
  for (const name of ['_since', '_at']) {
    const values = query[name] === undefined ? [] : [query[name]].flat().map(String);
    if (values.some((v) => !isDateTime(v))) {
      return invalid(`${name} must be a FHIR dateTime such as 2024-01-15T10:30:00Z, not ${values.join(',')}`);
    }
  }
  return undefined;
}

/** A search (GET [type], POST [type]/_search, a conditional PUT/PATCH/DELETE [type]?...): modifiers mean something. */
function isSearch(req: Request): boolean {
  const segments = req.path.split('/').filter(Boolean);
  if (segments.length === 2) return req.method === 'POST' && segments[1] === '_search';
  return segments.length <= 1 && req.method !== 'POST' && !segments[0]?.startsWith('$') && segments[0] !== 'metadata';
}

/**
 * Parameter names that are not properties of Object.prototype (the parser looks them up on plain
 * objects), and, in a search, modifiers, `_summary`, `_total` and `:missing` values we implement.
 */
function refuseSearchParameters(params: Record<string, unknown>, where: string, searching = true): Refusal | undefined {
  for (const [key, value] of Object.entries(params)) {
    const [name, modifier] = key.split(':', 2);
    if (name in Object.prototype || (modifier !== undefined && modifier in Object.prototype)) {
      return invalid(`Unknown parameter ${JSON.stringify(key)} in the ${where}`);
    }
    if (!searching) continue;
    const values = (Array.isArray(value) ? value : [value]).map(String);
    // `:Type` (a resource type) on a reference parameter: search/query.ts checks it names a target.
    // Chains (`patient:Patient.identifier`) and `_has:Type:...` are read link by link in search/chain.ts.
    const linked = name.includes('.') || name === '_has' || (modifier !== undefined && modifier.includes('.'));
    if (modifier !== undefined && !MODIFIERS.has(modifier) && !linked && !/^[A-Z][A-Za-z]{0,63}$/.test(modifier)) {
      return invalid(`The modifier :${modifier} of ${name} is not supported (supported: ${[...MODIFIERS].map((m) => `:${m}`).join(' ')})`);
    }
    if (modifier === 'iterate' && name !== '_include' && name !== '_revinclude') {
      return invalid(`:iterate applies to _include and _revinclude only, not ${name}`);
    }
    if (modifier === 'missing' && values.some((v) => v !== 'true' && v !== 'false')) {
      return invalid(`${key} takes true or false`);
    }
    if (name === '_summary' && values.some((v) => !SUMMARY_VALUES.has(v))) {
      return invalid(`_summary takes true, false, text, data or count, not ${values.join(',')}`);
    }
    if ((name === '_include' || name === '_revinclude') && values.some((v) => v.split(':').some((part) => part in Object.prototype))) {
      return invalid(`${name} names a parameter that no resource has: ${values.join(',')}`);
    }
    if ((name === '_elements' || name === '_sort') && values.some((v) => v.split(',').some((e) => e.replace(/^-/, '') in Object.prototype))) {
      return invalid(`${name} names an element that no resource has: ${values.join(',')}`);
    }
    if (name === '_total' && values.some((v) => !TOTAL_VALUES.has(v))) {
      return invalid(`_total takes none, estimate or accurate, not ${values.join(',')}`);
    }
  }
  return undefined;
}

const BundleRequest = z.object({
  method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'], { error: 'must be GET, HEAD, POST, PUT, PATCH or DELETE' }),
  url: z.string({ error: must('a string') }).min(1, 'must not be empty').max(8192, 'is longer than 8192 characters'),
  ifMatch: z.string({ error: must('a string') }).regex(IF_MATCH, 'must be one version ETag such as W/"3"').optional(),
  ifNoneMatch: z.string({ error: must('a string') }).optional(),
  ifNoneExist: z.string({ error: must('a string') }).optional(),
  ifModifiedSince: z.string({ error: must('a string') }).optional(),
}, { error: must('an object') });

const BundleEntry = z.object(
  {
    fullUrl: z.string({ error: must('a string') }).optional(),
    resource: z.object({ resourceType: z.string({ error: must('a string') }) }, { error: must('a resource') }).loose().optional(),
    request: BundleRequest,
  },
  { error: must('an object') },
);

const Bundle = z.object({
  type: z.string({ error: must('a string') }),
  entry: z.array(BundleEntry, { error: must('an array') }).max(MAX_BUNDLE_ENTRIES, `has more than ${MAX_BUNDLE_ENTRIES} entries`).optional(),
});

/** Every entry of a batch or transaction must say what to do; one that does not fails the whole Bundle. */
function refuseMalformedBundle(body: { entry?: unknown }): Refusal | undefined {
  // Counted first: zod would check every entry of a huge list before its length.
  if (Array.isArray(body.entry) && body.entry.length > MAX_BUNDLE_ENTRIES) {
    return { status: 413, outcome: outcome('error', 'too-costly', `Bundle.entry has more than ${MAX_BUNDLE_ENTRIES} entries`, 'Bundle.entry') };
  }
  const parsed = Bundle.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const expression = fhirPath('Bundle', issue.path);
    return invalid(`${expression} ${issue.message}`, expression);
  }
  for (const [i, entry] of (parsed.data.entry ?? []).entries()) {
    if ((entry.request.method === 'POST' || entry.request.method === 'PUT') && !entry.resource) {
      return invalid(`Bundle.entry[${i}].resource is required for ${entry.request.method}`, `Bundle.entry[${i}].resource`);
    }
    const query = entry.request.url.includes('?') ? entry.request.url.slice(entry.request.url.indexOf('?') + 1) : '';
    for (const [text, where] of [[query, `Bundle.entry[${i}].request.url`], [entry.request.ifNoneExist ?? '', `Bundle.entry[${i}].request.ifNoneExist`]]) {
      const params = Object.fromEntries(new URLSearchParams(text));
      // Hostile search values in an entry are that entry's 400 (search/limits.ts); names reaching Object.prototype fail the Bundle.
      const refusal = refuseSearchParameters(params, where, entry.request.method === 'GET')?.outcome.issue[0].details?.text;
      if (refusal) return invalid(`${where}: ${refusal}`, where);
    }
  }
  return undefined;
}

const Parameter: z.ZodType = z.lazy(() =>
  z.object({ name: z.string({ error: must('a string') }), part: z.array(Parameter, { error: must('an array') }).optional() }, { error: must('an object') }).loose(),
);
const ParametersBody = z.object({ parameter: z.array(Parameter, { error: must('an array') }).optional() });

/** Operations read `parameter[].name`; a Parameters whose parameters are not objects with names is refused. */
function refuseMalformedParameters(body: unknown): Refusal | undefined {
  const parsed = ParametersBody.safeParse(body);
  if (parsed.success) return undefined;
  const issue = parsed.error.issues[0];
  const expression = fhirPath('Parameters', issue.path);
  return invalid(`${expression} ${issue.message}`, expression);
}

/**
 * An operation's Parameters (not $validate's, whose resource may be invalid on purpose) must be a
 * valid Parameters resource, so operations read typed values: a reference that is a string, a
 * Money whose value is a number.
 */
function refuseInvalidParameters(body: unknown): Refusal | undefined {
  try {
    validateResource(body as Parameters);
    return undefined;
  } catch (err) {
    if (err instanceof OperationOutcomeError) return { status: 400, outcome: err.outcome };
    throw err;
  }
}

function fhirPath(root: string, path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : `${acc}.${String(p)}`), root);
}
