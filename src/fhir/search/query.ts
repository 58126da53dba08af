import { OperationOutcomeError, badRequest } from '@medplum/core';
import type { Filter, SearchRequest, SortRule } from '@medplum/core';
import { fhirDateRange } from './dates.ts';
import { normalizeString, parseReference } from './index-values.ts';
import { searchableParameters } from './parameters.ts';
import type { IndexedParameter } from './parameters.ts';

/** SQL for one search: a WHERE clause over `resource r` and an ORDER BY, with its parameters. */
export interface CompiledSearch {
  where: string;
  orderBy: string;
  params: unknown[];
}

/**
 * Compiles a parsed FHIR search into parameterised SQL. Every condition is an index lookup keyed by
 * (tenant_id, resource_type, code, value), so its cost follows the matches, not the table size.
 */
export function compileSearch(tenantId: string, request: SearchRequest, options = { sort: true }): CompiledSearch {
  const params: unknown[] = [tenantId, request.resourceType];
  const bind = (value: unknown): string => `$${params.push(value)}`;
  const conditions = ['r.tenant_id = $1', 'r.resource_type = $2', 'NOT r.deleted'];
  for (const filter of request.filters ?? []) {
    conditions.push(compileFilter(request.resourceType, filter, bind));
  }
  const orderBy = options.sort ? compileSort(request, bind) : '';
  return { where: conditions.join(' AND '), orderBy, params };
}

type Bind = (value: unknown) => string;

function compileFilter(resourceType: string, filter: Filter, bind: Bind): string {
  const { code, operator } = filter;
  if (code.includes('.') || code.includes(':')) {
    throw invalid(`Chained and typed search parameters are not supported: ${code}`);
  }
  const values = splitValues(filter.value);
  if (code === '_id') {
    const ids = bind(values);
    if (operator === 'eq') return `r.id = ANY(${ids}::text[])`;
    if (operator === 'ne' || operator === 'not') return `r.id <> ALL(${ids}::text[])`;
    throw unsupportedModifier(code, operator);
  }
  if (code === '_lastUpdated') {
    return anyOf(values.map((v) => dateCondition('r.last_updated', 'r.last_updated', operator, v, bind)));
  }
  const param = searchableParameters(resourceType).get(code);
  if (!param) throw invalid(`Unknown search parameter '${code}' for resource type ${resourceType}`);

  const table = `search_${param.kind}`;
  const rowsOf = (valueCondition: string): string =>
    `EXISTS (SELECT 1 FROM ${table} i WHERE i.tenant_id = r.tenant_id AND i.resource_type = r.resource_type ` +
    `AND i.resource_id = r.id AND i.code = ${bind(code)}${valueCondition ? ` AND (${valueCondition})` : ''})`;

  if (operator === 'missing' || operator === 'present') {
    const missing = (values[0] === 'true') === (operator === 'missing');
    return missing ? `NOT ${rowsOf('')}` : rowsOf('');
  }
  if (operator === 'not' || (operator === 'ne' && param.kind === 'token')) {
    return `NOT ${rowsOf(anyOf(values.map((v) => valueCondition(param, 'eq', v, bind))))}`;
  }
  return rowsOf(anyOf(values.map((v) => valueCondition(param, operator, v, bind))));
}

function valueCondition(param: IndexedParameter, operator: string, value: string, bind: Bind): string {
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
  return `i.reference = ${bind(parseReference(text).reference)}`;
}

/** FHIR date prefixes as comparisons of the stored range [low, high] with the searched range [qLow, qHigh]. */
const DATE_COMPARISONS: Record<string, (low: string, high: string, qLow: () => string, qHigh: () => string) => string> = {
  eq: (low, high, qLow, qHigh) => `${low} >= ${qLow()} AND ${high} <= ${qHigh()}`,
  ne: (low, high, qLow, qHigh) => `(${low} < ${qLow()} OR ${high} > ${qHigh()})`,
  gt: (_low, high, _qLow, qHigh) => `${high} > ${qHigh()}`,
  lt: (low, _high, qLow) => `${low} < ${qLow()}`,
  ge: (_low, high, qLow) => `${high} >= ${qLow()}`,
  le: (low, _high, _qLow, qHigh) => `${low} <= ${qHigh()}`,
  sa: (low, _high, _qLow, qHigh) => `${low} > ${qHigh()}`,
  eb: (_low, high, qLow) => `${high} < ${qLow()}`,
  ap: (low, high, qLow, qHigh) => `${low} <= ${qHigh()} AND ${high} >= ${qLow()}`,
};

function dateCondition(low: string, high: string, operator: string, value: string, bind: Bind): string {
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

const NUMBER_COMPARISONS: Record<string, string> = { eq: '=', ne: '<>', gt: '>', lt: '<', ge: '>=', le: '<=', sa: '>', eb: '<' };

function numberCondition(param: IndexedParameter, operator: string, value: string, bind: Bind): string {
  // quantity: number|system|code
  const [number, system, unit] = value.split('|');
  if (!/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(number)) throw invalid(`Invalid number in search: '${value}'`);
  const n = `${bind(number)}::numeric`;
  const parts =
    operator === 'ap'
      ? [`i.value BETWEEN ${n} * 0.9 AND ${n} * 1.1`]
      : NUMBER_COMPARISONS[operator]
        ? [`i.value ${NUMBER_COMPARISONS[operator]} ${n}`]
        : [];
  if (parts.length === 0) throw unsupportedModifier(param.code, operator);
  if (system) parts.push(`i.system = ${bind(system)}`);
  if (unit) parts.push(`i.unit = ${bind(unit)}`);
  return parts.join(' AND ');
}

const SORT_COLUMN: Record<string, [asc: string, desc: string]> = {
  token: ['min(i.value)', 'max(i.value)'],
  string: ['min(i.normalized)', 'max(i.normalized)'],
  reference: ['min(i.reference)', 'max(i.reference)'],
  date: ['min(i.low)', 'max(i.high)'],
  number: ['min(i.value)', 'max(i.value)'],
};

function compileSort(request: SearchRequest, bind: Bind): string {
  const terms = (request.sortRules ?? []).map((rule: SortRule) => {
    const direction = rule.descending ? 'DESC' : 'ASC';
    if (rule.code === '_id') return `r.id ${direction}`;
    if (rule.code === '_lastUpdated') return `r.last_updated ${direction}`;
    const param = searchableParameters(request.resourceType).get(rule.code);
    if (!param) throw invalid(`Unknown sort parameter '${rule.code}' for resource type ${request.resourceType}`);
    const aggregate = SORT_COLUMN[param.kind][rule.descending ? 1 : 0];
    return (
      `(SELECT ${aggregate} FROM search_${param.kind} i WHERE i.tenant_id = r.tenant_id AND ` +
      `i.resource_type = r.resource_type AND i.resource_id = r.id AND i.code = ${bind(param.code)}) ` +
      `${direction} NULLS LAST`
    );
  });
  // A total order, so that pages never overlap or skip.
  if (!terms.some((t) => t.startsWith('r.last_updated'))) terms.push('r.last_updated ASC');
  terms.push('r.id ASC');
  return terms.join(', ');
}

function anyOf(conditions: string[]): string {
  return conditions.length === 1 ? conditions[0] : conditions.map((c) => `(${c})`).join(' OR ');
}

/** Values are comma-separated (OR); `\,` is a literal comma. */
function splitValues(value: string): string[] {
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

function invalid(message: string): OperationOutcomeError {
  return new OperationOutcomeError(badRequest(message));
}

function unsupportedModifier(code: string, operator: string): OperationOutcomeError {
  return invalid(`Modifier or prefix '${operator}' is not supported on search parameter '${code}'`);
}
