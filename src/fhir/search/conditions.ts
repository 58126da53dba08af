import { OperationOutcomeError, badRequest } from '@medplum/core';
import { Decimal } from 'decimal.js';
import { parseReference } from '../references.ts';
import { fhirDateRange } from './dates.ts';
import { normalizeString } from './index-values.ts';
import type { IndexedParameter } from './parameters.ts';
import { phoneticKeys } from './phonetic.ts';

/**
 * One search value as a condition on the rows of its index table (alias `i`), parameterised
 * through `bind`. query.ts decides how the conditions combine and which one drives the plan.
 */
export type Bind = (value: unknown) => string;

export function valueCondition(param: IndexedParameter, operator: string, value: string, bind: Bind): string {
  switch (param.kind) {
    case 'token':
      return tokenCondition(param, operator, value, bind);
    case 'string':
      return stringCondition(param, operator, value, bind);
    case 'reference':
      return referenceCondition(param, operator, value, bind);
    case 'date':
      return dateCondition('i.low', 'i.high', operator, value, bind);
    case 'number':
      return numberCondition(param, operator, value, bind);
  }
}

/**
 * For OR values of an exact token or reference parameter: the values as arrays to unnest, and the
 * condition an index row must meet for one of them (`k`), so that each value is its own index
 * lookup. An OR (or `= ANY`) of values is no index condition the planner will choose without
 * statistics: it believes (tenant, type, code) already matches one row, so every extra index
 * probe looks like a cost. Undefined when a value does not name an indexed key (`system|`, a URL).
 */
export function keyedValues(param: IndexedParameter, operator: string, values: string[], bind: Bind): { unnest: string; match: string } | undefined {
  if (operator !== 'eq' || values.length < 2) return undefined;
  if (param.kind === 'token') {
    const rows = values.map((v) => tokenKey(param, v));
    if (rows.some((r) => r === undefined)) return undefined;
    const keys = rows as [string, string | null, boolean][];
    return {
      unnest: `unnest(${bind(keys.map((k) => k[0]))}::text[], ${bind(keys.map((k) => k[1]))}::text[], ${bind(keys.map((k) => k[2]))}::boolean[]) AS k(value, system, any_system)`,
      match: 'i.value = k.value AND (k.any_system OR i.system IS NOT DISTINCT FROM k.system)',
    };
  }
  if (param.kind === 'reference') {
    const rows = values.map(referenceKey);
    if (rows.some((r) => r === undefined)) return undefined;
    const keys = rows as [string, string | null][];
    return {
      unnest: `unnest(${bind(keys.map((k) => k[0]))}::text[], ${bind(keys.map((k) => k[1]))}::text[]) AS k(value, reference)`,
      match: 'i.target_id = k.value AND (k.reference IS NULL OR i.reference = k.reference)',
    };
  }
  return undefined;
}

/** [code, system (null: none), any system] of an exact token value, as tokenCondition reads it. */
function tokenKey(param: IndexedParameter, value: string): [string, string | null, boolean] | undefined {
  const bar = indexOfUnescaped(value, '|');
  if (bar < 0 || param.type === 'uri') return [unescape(value), null, true];
  const system = unescape(value.slice(0, bar));
  const code = unescape(value.slice(bar + 1));
  if (code === '') return undefined;
  return [code, system === '' ? null : system, false];
}

/** [target id, reference (null: any type)] of a reference value, as referenceCondition reads it. */
function referenceKey(value: string): [string, string | null] | undefined {
  const text = unescape(value);
  if (/^[A-Za-z0-9\-.]{1,64}$/.test(text)) return [text, null];
  const { reference, targetId } = parseReference(text);
  return targetId ? [targetId, reference] : undefined;
}

function tokenCondition(param: IndexedParameter, operator: string, value: string, bind: Bind): string {
  if (operator !== 'eq') throw unsupportedModifier(param.code, operator);
  const bar = indexOfUnescaped(value, '|');
  if (bar < 0 || param.type === 'uri') return `i.value = ${bind(unescape(value))}`;
  const system = unescape(value.slice(0, bar));
  const code = unescape(value.slice(bar + 1));
  if (system === '') return `i.system IS NULL AND i.value = ${bind(code)}`;
  if (code === '') return `i.system = ${bind(system)}`;
  return `i.value = ${bind(code)} AND i.system = ${bind(system)}`;
}

function stringCondition(param: IndexedParameter, operator: string, value: string, bind: Bind): string {
  const text = unescape(value);
  if (param.phonetic) {
    if (operator !== 'eq') throw unsupportedModifier(param.code, operator);
    const keys = phoneticKeys(text);
    if (keys.length === 0) throw invalid(`phonetic needs a name with letters, not '${text}'`);
    return `i.normalized = ANY(${bind(keys)}::text[])`;
  }
  if (operator === 'exact') return `i.value = ${bind(text)}`;
  const pattern = escapeLike(normalizeString(text));
  if (operator === 'eq' || operator === 'sw') return `i.normalized LIKE ${bind(pattern + '%')}`;
  if (operator === 'contains') return `i.normalized LIKE ${bind('%' + pattern + '%')}`;
  throw unsupportedModifier(param.code, operator);
}

function referenceCondition(param: IndexedParameter, operator: string, value: string, bind: Bind): string {
  if (operator !== 'eq') throw unsupportedModifier(param.code, operator);
  const text = unescape(value);
  if (/^[A-Za-z0-9\-.]{1,64}$/.test(text)) return `i.target_id = ${bind(text)}`;
  // target_id too, so the lookup has the (tenant, type, code, target_id) index to drive it.
  const { reference, targetId } = parseReference(text);
  return targetId ? `i.target_id = ${bind(targetId)} AND i.reference = ${bind(reference)}` : `i.reference = ${bind(reference)}`;
}

/** FHIR date prefixes as comparisons of the stored range [low, high] with the searched range [qLow, qHigh]. */
const DATE_COMPARISONS: Record<string, (low: string, high: string, qLow: () => string, qHigh: () => string) => string> = {
  eq: (low, high, qLow, qHigh) => `${low} >= ${qLow()} AND ${high} <= ${qHigh()}`,
  ne: (low, high, qLow, qHigh) => `(${low} < ${qLow()} OR ${high} > ${qHigh()})`,
  gt: (_low, high, _qLow, qHigh) => `${high} > ${qHigh()}`,
  lt: (low, _high, qLow) => `${low} < ${qLow()}`,
  // R4: the range above (below) the searched one overlaps the target's, or the searched range
  // contains it. The first conjunct is implied, and lets the date index drive.
  ge: (low, high, qLow, qHigh) => `${high} >= ${qLow()} AND (${high} > ${qHigh()} OR ${low} >= ${qLow()})`,
  le: (low, high, qLow, qHigh) => `${low} <= ${qHigh()} AND (${low} < ${qLow()} OR ${high} <= ${qHigh()})`,
  sa: (low, _high, _qLow, qHigh) => `${low} > ${qHigh()}`,
  eb: (_low, high, qLow) => `${high} < ${qLow()}`,
  ap: (low, high, qLow, qHigh) => `${low} <= ${qHigh()} AND ${high} >= ${qLow()}`,
};

export function dateCondition(low: string, high: string, operator: string, value: string, bind: Bind): string {
  const range = fhirDateRange(value);
  if (!range) throw invalid(`Invalid date in search: '${value}'`);
  const compare = DATE_COMPARISONS[operator];
  if (!compare) throw invalid(`Unsupported date comparison '${operator}'`);
  // Bound only when used: an unused parameter has no type and PostgreSQL refuses the statement.
  return compare(
    low,
    high,
    () => `${bind(range.low.toISOString())}::timestamptz`,
    () => `${bind(range.high.toISOString())}::timestamptz`,
  );
}

const NUMBER_COMPARISONS: Record<string, string> = { gt: '>', lt: '<', ge: '>=', le: '<=', sa: '>', eb: '<' };
const NUMBER = /^-?\d+(?:\.(\d+))?(?:[eE]([-+]?\d{1,3}))?$/;

/**
 * number and quantity (`number|system|code`). Equality honours the searched value's implicit
 * precision (R4 search, number): `45` is [44.5, 45.5), `45.0` is [44.95, 45.05), `4.5e1` is
 * [44.5, 45.5) (significant figures). Other prefixes compare with the value as written; `ap` is ±10%.
 * With a system, the unit is compared with Quantity.code; without one (`5||mg`), with code or unit.
 */
function numberCondition(param: IndexedParameter, operator: string, value: string, bind: Bind): string {
  const [number, system, unit] = value.split('|');
  // Bounded exponent: PostgreSQL's numeric refuses (with an error, not a false) what overflows it.
  const m = NUMBER.exec(number);
  if (!m) throw invalid(`Invalid number in search: '${value}'`);
  const exact = new Decimal(number);
  const half = new Decimal(5).times(Decimal.pow(10, Number(m[2] ?? 0) - (m[1]?.length ?? 0) - 1));
  const num = (d: Decimal): string => `${bind(d.toFixed())}::numeric`;
  let parts: string[];
  if (operator === 'eq') parts = [`i.value >= ${num(exact.minus(half))}`, `i.value < ${num(exact.plus(half))}`];
  else if (operator === 'ne') parts = [`(i.value < ${num(exact.minus(half))} OR i.value >= ${num(exact.plus(half))})`];
  else if (operator === 'ap') {
    const margin = exact.abs().times('0.1');
    parts = [`i.value BETWEEN ${num(exact.minus(margin))} AND ${num(exact.plus(margin))}`];
  } else if (NUMBER_COMPARISONS[operator]) parts = [`i.value ${NUMBER_COMPARISONS[operator]} ${num(exact)}`];
  else throw unsupportedModifier(param.code, operator);
  if (system) parts.push(`i.system = ${bind(system)}`);
  if (unit) parts.push(`i.unit = ${bind(unit)}`);
  return parts.join(' AND ');
}

export function anyOf(conditions: string[]): string {
  return conditions.length === 1 ? conditions[0] : conditions.map((c) => `(${c})`).join(' OR ');
}

/** Values are comma-separated (OR); `\,` is a literal comma. */
export function splitValues(value: string): string[] {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    if (value[i] === '\\') i++;
    else if (value[i] === ',') {
      parts.push(value.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(value.slice(start));
  return parts;
}

function indexOfUnescaped(value: string, char: string): number {
  for (let i = 0; i < value.length; i++) {
    if (value[i] === '\\') i++;
    else if (value[i] === char) return i;
  }
  return -1;
}

function unescape(value: string): string {
  return value.replace(/\\([\\,|$])/g, '$1');
}

function escapeLike(value: string): string {
  return value.replace(/[\\%_]/g, (c) => '\\' + c);
}

export function invalid(message: string): OperationOutcomeError {
  return new OperationOutcomeError(badRequest(message));
}

export function unsupportedModifier(code: string, operator: string): OperationOutcomeError {
  return invalid(`Modifier or prefix '${operator}' is not supported on search parameter '${code}'`);
}
