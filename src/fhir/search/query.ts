import type { Filter, SearchRequest, SortRule } from '@medplum/core';
import { SUPPORTED_RESOURCE_TYPES } from '../../profiles/index.ts';
import { localReference } from '../references.ts';
import { PATIENT_COMPARTMENT } from '../compartment.ts';
import { compileChain, compileCompartment, compileHas } from './chain.ts';
import { anyOf, dateCondition, invalid, keyedValues, splitValues, unsupportedModifier, valueCondition } from './conditions.ts';
import type { Bind } from './conditions.ts';
import { assertSearchInput } from './limits.ts';
import { searchableParameters } from './parameters.ts';
import type { IndexedParameter } from './parameters.ts';

/**
 * SQL for one search, as `SELECT ... FROM ${from} WHERE ${where} ORDER BY ${orderBy}`; the
 * resource is `r` (columns of the `resource` table).
 */
export interface CompiledSearch {
  from: string;
  where: string;
  orderBy: string;
  params: unknown[];
  /** The types a chain or `_has` reads besides the searched one: the caller needs search scope on them too. */
  otherTypes: Set<string>;
}

/**
 * Compiles a parsed FHIR search into parameterised SQL whose plan does not depend on statistics.
 *
 * Left to the planner, `resource r WHERE EXISTS (index rows of r)` on tables never analysed was a
 * nested loop over every resource, each probing the index table with only (tenant, type): O(N²),
 * 26 s for a no-match identifier search at 6,000 Claims. So the shape is fixed here:
 * the most selective positive condition is looked up alone in its value index (a subquery the
 * planner cannot flatten), and each id it yields fetches its resource by primary key (a LATERAL
 * subquery, so a nested loop driven by the matches). Every other condition is a correlated EXISTS
 * kept as a per-row subplan (OFFSET 0 stops it becoming a join). Cost follows the matches of the
 * driving condition, with or without ANALYZE. A search with no positive condition scans the type.
 */
export interface CompileOptions {
  sort?: boolean;
  /** This server's FHIR bases: a searched reference under one of them is the local `Type/id`. */
  localBases?: readonly string[];
}

export function compileSearch(tenantId: string, request: SearchRequest, options: CompileOptions = {}): CompiledSearch {
  assertSearchInput(request);
  const params: unknown[] = [tenantId, request.resourceType];
  const bind: Bind = (value) => `$${params.push(value)}`;
  const ctx: FilterContext = { bind, localBases: options.localBases ?? [], otherTypes: new Set(), depth: 0 };
  const conditions = (request.filters ?? []).map((filter) => compileFilter(request.resourceType, filter, ctx));
  const keyset = keysetCursor(request);
  if (keyset !== undefined) conditions.push({ where: () => `r.id > ${bind(keyset)}` });
  const driver = conditions.reduce<CompiledFilter | undefined>(
    (best, c) => (c.drive !== undefined && (best?.drive === undefined || c.drive.rank < best.drive.rank) ? c : best),
    undefined,
  );
  const residual = conditions.filter((c) => c !== driver).map((c) => c.where());
  const orderBy = options.sort === false ? '' : compileSort(request, bind);
  if (!driver?.drive) {
    return { from: 'resource r', where: ['r.tenant_id = $1', 'r.resource_type = $2', 'NOT r.deleted', ...residual].join(' AND '), orderBy, params, otherTypes: ctx.otherTypes };
  }
  const from =
    `(${driver.drive.ids()} OFFSET 0) m CROSS JOIN LATERAL ` +
    '(SELECT * FROM resource r WHERE r.tenant_id = $1 AND r.resource_type = $2 AND r.id = m.resource_id OFFSET 0) r';
  return { from, where: ['NOT r.deleted', ...residual].join(' AND '), orderBy, params, otherTypes: ctx.otherTypes };
}

/** The statement search.ts runs for one page: `limit` rows from `offset`, bound after the search's own parameters. */
export function pageStatement(search: CompiledSearch): string {
  const n = search.params.length;
  return `SELECT r.content FROM ${search.from} WHERE ${search.where} ORDER BY ${search.orderBy} LIMIT $${n + 1} OFFSET $${n + 2}`;
}

export function countStatement(search: CompiledSearch): string {
  return `SELECT count(*)::text AS n FROM ${search.from} WHERE ${search.where}`;
}

/** Built lazily, so that only what the statement uses is bound (PostgreSQL refuses an unused, untyped parameter). */
export interface CompiledFilter {
  /** The condition on `r`, for when another filter drives. */
  where: () => string;
  /** When the filter can drive: a SELECT of its matching `resource_id`s, and how selective it tends to be (lower first). */
  drive?: { ids: () => string; rank: number };
}

/**
 * Which filter drives, without statistics: ids named outright, then identifiers, references and
 * exact strings, then other codes (a status matches many) and prefixes, ranges, a bare system,
 * and whole-parameter scans last. Ties go to the filter written first.
 */
export const RANK = { ids: 0, exact: 1, value: 2, range: 3, system: 4, scan: 5 };

/**
 * Paging by keyset: a search in the default order (by id) pages with `_cursor` = the last id
 * returned, so a resource updated or created between pages is neither skipped nor repeated. An
 * explicit `_sort` (other than _id) pages by offset: a sort value may change between pages.
 */
export function usesKeyset(request: SearchRequest): boolean {
  const rules = request.sortRules ?? [];
  return rules.length === 0 || (rules.length === 1 && rules[0].code === '_id' && !rules[0].descending);
}

function keysetCursor(request: SearchRequest): string | undefined {
  if (request.cursor === undefined) return undefined;
  if (!usesKeyset(request)) throw invalid('_cursor pages the default order only; with _sort, page with _offset');
  if (!/^[A-Za-z0-9\-.]{1,64}$/.test(request.cursor)) throw invalid('_cursor must be a resource id from a next link');
  return request.cursor;
}

const resourceTypes = new Set<string>(SUPPORTED_RESOURCE_TYPES);

/**
 * A filter's operator and values, each OR value with its own prefix (`ge2024-01-01,le2023-01-01`:
 * core reads only the first), reference values in local form and with the `:Type` modifier applied.
 */
function filterValues(param: IndexedParameter | undefined, filter: Filter, localBases: readonly string[]): { operator: string; values: { operator: string; value: string }[] } {
  const raw = splitValues(filter.value);
  let operator = filter.operator as string;
  if (param?.kind === 'reference') {
    let type: string | undefined;
    if (/^[A-Z]/.test(operator)) {
      type = operator;
      if (!resourceTypes.has(type) || (param.targets && !param.targets.includes(type))) {
        throw invalid(`:${type} is not a type that ${filter.code} may refer to${param.targets ? ` (${param.targets.join(', ')})` : ''}`);
      }
      operator = 'eq';
    }
    return {
      operator,
      values: raw.map((v) => {
        const local = localReference(v, localBases);
        return { operator, value: type && /^[A-Za-z0-9\-.]{1,64}$/.test(local) ? `${type}/${local}` : local };
      }),
    };
  }
  const prefixed = param?.kind === 'date' || param?.kind === 'number';
  return {
    operator,
    values: raw.map((value, i) => {
      const m = i > 0 && prefixed ? /^(eq|ne|gt|lt|ge|le|sa|eb|ap)(?=[-\d])/.exec(value) : null;
      return m ? { operator: m[1], value: value.slice(2) } : { operator: i > 0 && prefixed ? 'eq' : operator, value };
    }),
  };
}

export interface FilterContext {
  bind: Bind;
  localBases: readonly string[];
  otherTypes: Set<string>;
  /** Links of chains and `_has` above this filter. */
  depth: number;
  /** SQL of the searched type's name: `$2` at the top, a bound name inside a chain or `_has` (bound when used). */
  typeParam?: () => string;
}

/**
 * One filter as a condition on `r` and, when it can, an index lookup of its matching ids. `ctx.typeParam`
 * names the type the lookup reads (chain.ts compiles a chain's target type with its own).
 */
export function compileFilter(resourceType: string, filter: Filter, ctx: FilterContext): CompiledFilter {
  const { code, operator } = filter;
  const { bind, localBases } = ctx;
  const typeParam = ctx.typeParam ?? (() => '$2');
  if (code.startsWith('_has:')) return compileHas(resourceType, filter, ctx, compileFilter);
  if (code === '_compartment') return compileCompartment(resourceType, filter, ctx, PATIENT_COMPARTMENT);
  if (code.includes('.')) return compileChain(resourceType, filter, ctx, compileFilter);
  if (code.includes(':')) throw invalid(`Search parameter '${code}' is not supported`);
  const values = splitValues(filter.value);
  // Every resource has an id and a lastUpdated: :missing=true matches none, :missing=false all.
  if ((code === '_id' || code === '_lastUpdated') && (operator === 'missing' || operator === 'present')) {
    const none = (filter.value === 'true') === (operator === 'missing');
    return { where: () => (none ? 'FALSE' : 'TRUE') };
  }
  if (code === '_id') {
    if (operator !== 'eq' && operator !== 'ne' && operator !== 'not') throw unsupportedModifier(code, operator);
    const ids = once(() => bind(values));
    if (operator !== 'eq') return { where: () => `r.id <> ALL(${ids()}::text[])` };
    return { where: () => `r.id = ANY(${ids()}::text[])`, drive: { ids: () => `SELECT DISTINCT unnest(${ids()}::text[]) AS resource_id`, rank: RANK.ids } };
  }
  if (code === '_lastUpdated') {
    const noBind: Bind = () => '$0';
    values.forEach((v) => dateCondition('r.last_updated', 'r.last_updated', operator, v, noBind)); // refuses bad values now
    return { where: () => anyOf(values.map((v) => dateCondition('r.last_updated', 'r.last_updated', operator, v, bind))) };
  }
  const param = searchableParameters(resourceType).get(code);
  if (!param) throw invalid(`Search parameter '${code}' is unknown or not supported for resource type ${resourceType}`);

  const table = `search_${param.kind}`;
  const codeParam = once(() => bind(code));
  const filtered = filterValues(param, filter, localBases);
  const negated = operator === 'not' || (operator === 'ne' && param.kind === 'token');
  const presence = operator === 'missing' || operator === 'present';
  const each = filtered.values.map((v) => ({ value: v.value, operator: negated ? 'eq' : v.operator }));
  if (!presence) each.forEach((v) => valueCondition(param, v.operator, v.value, () => '$0')); // refuses bad values now
  const condition = once(() => (presence ? '' : anyOf(each.map((v) => valueCondition(param, v.operator, v.value, bind)))));
  const matching = (): string => (condition() ? ` AND (${condition()})` : '');
  // Per row of r: a subplan probing the index by resource_id (OFFSET 0 keeps it one).
  const rowsOf = (): string =>
    `EXISTS (SELECT 1 FROM ${table} i WHERE i.tenant_id = r.tenant_id AND i.resource_type = r.resource_type ` +
    `AND i.resource_id = r.id AND i.code = ${codeParam()}${matching()} OFFSET 0)`;

  if (presence && (values[0] === 'true') === (operator === 'missing')) return { where: () => `NOT ${rowsOf()}` };
  if (negated) return { where: () => `NOT ${rowsOf()}` };

  // DISTINCT outside the lookup: inside, it would favour an index sorted by resource_id.
  const lookup = (): string =>
    `SELECT DISTINCT d.resource_id FROM (SELECT i.resource_id FROM ${table} i WHERE i.tenant_id = $1 ` +
    `AND i.resource_type = ${typeParam()} AND i.code = ${codeParam()}${matching()} OFFSET 0) d`;
  // Several exact values: one index lookup per value (LATERAL, OFFSET 0: it stays one), not an OR
  // the planner may answer with a scan.
  const keyedLookup = (): string | undefined => {
    const keyed = keyedValues(param, filtered.operator, each.map((v) => v.value), bind);
    return (
      keyed &&
      `SELECT DISTINCT d.resource_id FROM ${keyed.unnest} CROSS JOIN LATERAL (SELECT i.resource_id FROM ${table} i ` +
        `WHERE i.tenant_id = $1 AND i.resource_type = ${typeParam()} AND i.code = ${codeParam()} AND ${keyed.match} OFFSET 0) d`
    );
  };
  return {
    where: rowsOf,
    drive: { ids: () => keyedLookup() ?? lookup(), rank: presence ? RANK.scan : rankOf(param, operator, each.map((v) => v.value)) },
  };
}

function once(make: () => string): () => string {
  let made: string | undefined;
  return () => (made ??= make());
}

function rankOf(param: IndexedParameter, operator: string, values: string[]): number {
  switch (param.kind) {
    case 'date':
    case 'number':
      return RANK.range;
    case 'string':
      return operator === 'exact' ? RANK.exact : operator === 'contains' ? RANK.scan : RANK.value;
    case 'reference':
      return RANK.exact;
    case 'token':
      if (values.some((v) => v.endsWith('|') && !v.endsWith('\\|'))) return RANK.system;
      return /identifier/i.test(param.code) ? RANK.exact : RANK.value;
  }
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
    // The rows of this resource first (OFFSET 0), then the aggregate: left whole, min/max would
    // walk the value index in order, over every resource's rows, to find this one's first.
    return (
      `(SELECT ${aggregate} FROM (SELECT * FROM search_${param.kind} i WHERE i.tenant_id = r.tenant_id AND ` +
      `i.resource_type = r.resource_type AND i.resource_id = r.id AND i.code = ${bind(param.code)} OFFSET 0) i) ` +
      `${direction} NULLS LAST`
    );
  });
  // A total order, so that pages never overlap or skip; by id alone by default (keyset paging).
  if (!terms.some((t) => t.startsWith('r.id'))) terms.push('r.id ASC');
  return terms.join(', ');
}
