import type { Filter } from '@medplum/core';
import { SUPPORTED_RESOURCE_TYPES } from '../../profiles/index.ts';
import { invalid } from './conditions.ts';
import { searchableParameters } from './parameters.ts';
import type { CompiledFilter, FilterContext } from './query.ts';
import { RANK } from './query.ts';

/**
 * Chained parameters (`Claim?patient.identifier=sys|val`, `patient:Patient.name=...`, several
 * links) and reverse chaining (`Patient?_has:Claim:patient:identifier=...`), compiled to index
 * lookups as every other parameter is: the innermost filter is looked up in its value index, and
 * each link joins through `search_reference` by `target_id` (a chain) or `resource_id` (`_has`),
 * both indexed. A link never scans a table unless its innermost filter has no index lookup.
 */

type Compile = (resourceType: string, filter: Filter, ctx: FilterContext) => CompiledFilter;

/** Deeper than this is a 400: each link is a join, and R4 leaves the depth to the server. */
const MAX_DEPTH = 4;
const types = new Set<string>(SUPPORTED_RESOURCE_TYPES);

export function compileChain(resourceType: string, filter: Filter, ctx: FilterContext, compile: Compile): CompiledFilter {
  const dot = filter.code.indexOf('.');
  const [code, typeModifier] = filter.code.slice(0, dot).split(':', 2);
  const rest = filter.code.slice(dot + 1);
  const param = searchableParameters(resourceType).get(code);
  if (!param || param.kind !== 'reference') throw invalid(`'${code}' in '${filter.code}' is not a reference parameter of ${resourceType}, so it cannot be chained`);
  const next = nextCode(rest);
  const candidates = typeModifier ? [typeModifier] : (param.targets ?? []).filter((t) => types.has(t) && searchableParameters(t).has(next));
  if (typeModifier && (!types.has(typeModifier) || (param.targets && !param.targets.includes(typeModifier)))) {
    throw invalid(`:${typeModifier} is not a type that ${code} may refer to`);
  }
  if (candidates.length === 0 || (typeModifier && !searchableParameters(typeModifier).has(next) && !next.startsWith('_has'))) {
    throw invalid(`No type that ${resourceType}.${code} may refer to has a search parameter '${next}'`);
  }
  const inner = innerFilter(rest, filter);
  const { bind } = ctx;
  const depth = assertDepth(ctx, filter.code);
  const codeParam = once(() => bind(code));
  const typeParam = ctx.typeParam ?? (() => '$2');
  const targets = candidates.map((target) => {
    ctx.otherTypes.add(target);
    const targetCtx: FilterContext = { ...ctx, depth, typeParam: undefined };
    return { target, ids: idsOf(target, inner, targetCtx, compile) };
  });
  // Per target type: its matching ids, then the references to each (target_id index).
  const lookup = once(() =>
    targets
      .map(
        ({ target, ids }) =>
          `SELECT d.resource_id FROM (${ids.sql()}) x CROSS JOIN LATERAL (SELECT i.resource_id FROM search_reference i ` +
          `WHERE i.tenant_id = $1 AND i.resource_type = ${typeParam()} AND i.code = ${codeParam()} AND i.target_id = x.resource_id ` +
          `AND i.reference = ${bind(`${target}/`)}::text || x.resource_id OFFSET 0) d`,
      )
      .join(' UNION '),
  );
  const rank = Math.max(...targets.map((t) => t.ids.rank));
  return {
    where: () => `r.id IN (SELECT z.resource_id FROM (${lookup()}) z)`,
    drive: { ids: () => `SELECT DISTINCT c.resource_id FROM (${lookup()}) c`, rank },
  };
}

export function compileHas(resourceType: string, filter: Filter, ctx: FilterContext, compile: Compile): CompiledFilter {
  const [, source, code, ...restParts] = filter.code.split(':');
  const rest = restParts.join(':');
  if (!source || !code || !rest) throw invalid(`_has takes _has:Type:parameter:parameter, not '${filter.code}'`);
  if (!types.has(source)) throw invalid(`_has: ${source} is not a type this server serves`);
  const param = searchableParameters(source).get(code);
  if (!param || param.kind !== 'reference') throw invalid(`_has: '${code}' is not a reference parameter of ${source}`);
  if (param.targets && !param.targets.includes(resourceType)) throw invalid(`_has: ${source}.${code} does not refer to ${resourceType}`);
  const { bind } = ctx;
  const depth = assertDepth(ctx, filter.code);
  ctx.otherTypes.add(source);
  const sourceCtx: FilterContext = { ...ctx, depth, typeParam: undefined };
  const ids = idsOf(source, innerFilter(rest, filter), sourceCtx, compile);
  const typeParam = ctx.typeParam ?? (() => '$2');
  // The matching sources' references (resource_id index), kept when they point at this type.
  const lookup = once(
    () =>
      `SELECT d.target_id AS resource_id FROM (${ids.sql()}) x CROSS JOIN LATERAL (SELECT i.target_id FROM search_reference i ` +
      `WHERE i.tenant_id = $1 AND i.resource_id = x.resource_id AND i.resource_type = ${bind(source)} AND i.code = ${bind(code)} ` +
      `AND i.target_id IS NOT NULL AND i.reference = ${typeParam()}::text || '/' || i.target_id OFFSET 0) d`,
  );
  return {
    where: () => `r.id IN (SELECT z.resource_id FROM (${lookup()}) z)`,
    drive: { ids: () => `SELECT DISTINCT c.resource_id FROM (${lookup()}) c`, rank: ids.rank },
  };
}

/** The code of the parameter a chain's next link searches (`identifier` of `identifier:exact`, `organization` of `organization.name`). */
function nextCode(rest: string): string {
  return rest.startsWith('_has:') ? '_has' : rest.split('.')[0].split(':')[0];
}

/**
 * The filter on the next type: its code with the modifier as operator (`name:exact`), and for the
 * last link of date and number parameters the value's prefix as operator (`ge2024-01-01`).
 */
function innerFilter(rest: string, outer: Filter): Filter {
  if (rest.startsWith('_has:') || rest.includes('.')) return { code: rest, operator: outer.operator, value: outer.value };
  const [code, modifier] = rest.split(':', 2);
  if (modifier) return { code, operator: modifier as Filter['operator'], value: outer.value };
  const m = /^(eq|ne|gt|lt|ge|le|sa|eb|ap)(?=[-\d])/.exec(outer.value);
  return m ? { code, operator: m[1] as Filter['operator'], value: outer.value.slice(2) } : { code, operator: outer.operator, value: outer.value };
}

/**
 * The ids of `type` matching `filter`, as SQL selecting `resource_id`: its index lookup, or (a
 * filter with none, such as `:missing`) a scan of the type's resources.
 */
function idsOf(type: string, filter: Filter, ctx: FilterContext, compile: Compile): { sql: () => string; rank: number } {
  const typeParam = once(() => ctx.bind(type));
  const compiled = compile(type, filter, { ...ctx, typeParam });
  if (compiled.drive) return { sql: compiled.drive.ids, rank: compiled.drive.rank };
  return {
    sql: () => `SELECT r.id AS resource_id FROM resource r WHERE r.tenant_id = $1 AND r.resource_type = ${typeParam()} AND NOT r.deleted AND ${compiled.where()}`,
    rank: RANK.scan,
  };
}

function assertDepth(ctx: FilterContext, code: string): number {
  const depth = ctx.depth + 1;
  if (depth > MAX_DEPTH) throw invalid(`'${code}' chains more than ${MAX_DEPTH} links`);
  return depth;
}

function once(make: () => string): () => string {
  let made: string | undefined;
  return () => (made ??= make());
}

/**
 * `_compartment=Patient/{id}` (compartment.ts: `Patient/{id}/Claim`): the resources whose
 * compartment parameters refer to the patient, one lookup of the reference target index; for
 * Patient itself, the patient and those that `link` to it.
 */
export function compileCompartment(resourceType: string, filter: Filter, ctx: FilterContext, params: Record<string, string[]>): CompiledFilter {
  const m = /^Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(filter.value);
  if (filter.operator !== 'eq' || !m) throw invalid('_compartment takes Patient/{id}');
  const codes = params[resourceType];
  if (!codes) throw invalid(`${resourceType} is not in the Patient compartment`);
  const { bind } = ctx;
  const typeParam = ctx.typeParam ?? (() => '$2');
  const lookup = once(() => {
    const id = bind(m[1]);
    const refs =
      `SELECT i.resource_id FROM search_reference i WHERE i.tenant_id = $1 AND i.resource_type = ${typeParam()} ` +
      `AND i.code = ANY(${bind(codes)}::text[]) AND i.target_id = ${id} AND i.reference = ${bind(filter.value)}`;
    return resourceType === 'Patient' ? `${refs} UNION SELECT ${id}::text` : refs;
  });
  return {
    where: () => `r.id IN (SELECT z.resource_id FROM (${lookup()}) z)`,
    drive: { ids: () => `SELECT DISTINCT c.resource_id FROM (${lookup()}) c`, rank: RANK.exact },
  };
}
