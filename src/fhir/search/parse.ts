import { parseSearchRequest } from '@medplum/core';
import type { Filter, SearchRequest } from '@medplum/core';
import { getSearchParametersFor } from '../../profiles/index.ts';
import { searchableParameters } from './parameters.ts';

type Query = Record<string, string | string[] | undefined>;

/**
 * core's parseSearchRequest, except for the parameters it reads wrongly, which are left to
 * query.ts (it checks every value there, with a 400 for what it cannot answer):
 * - date, number and quantity values separated by commas (OR, each with its own prefix): core
 *   refuses them as one malformed value;
 * - `:Type` on a reference parameter: core drops the modifier and searches every type;
 * - chained parameters and `_has` (core keeps them, but its own parse of their modifiers is not ours);
 * - parameters of types we do not index (`Location?near`, composites): core throws a plain Error (a 500).
 */
export function parseFhirSearch(resourceType: string, query: Query): SearchRequest {
  const indexed = searchableParameters(resourceType);
  const known = getSearchParametersFor(resourceType);
  const passed: Query = {};
  const own: Filter[] = [];
  for (const [key, value] of Object.entries(query)) {
    // Chains and _has: the whole key is the code; search/chain.ts reads its links and modifiers.
    if (key.startsWith('_has:') || key.split(':')[0].includes('.') || /^[^.:]+:[A-Z][A-Za-z]*\./.test(key)) {
      for (const v of [value ?? []].flat()) own.push({ code: key, operator: 'eq' as Filter['operator'], value: v });
      continue;
    }
    const [code, modifier] = key.split(':', 2);
    const param = indexed.get(code);
    const ours =
      (param && (param.kind === 'date' || param.kind === 'number')) ||
      (param?.kind === 'reference' && modifier !== undefined && /^[A-Z]/.test(modifier)) ||
      (!param && !code.startsWith('_') && Object.hasOwn(known, code));
    if (!ours) {
      passed[key] = value;
      continue;
    }
    for (const v of [value ?? []].flat()) own.push(filterOf(code, modifier, v));
  }
  const request = parseSearchRequest(resourceType as SearchRequest['resourceType'], passed);
  if (own.length) request.filters = [...(request.filters ?? []), ...own];
  return request;
}

/** As core reads a parameter it does not know: the modifier, else a prefix of the first value. */
function filterOf(code: string, modifier: string | undefined, value: string): Filter {
  if (modifier) return { code, operator: modifier as Filter['operator'], value };
  const m = /^(eq|ne|gt|lt|ge|le|sa|eb|ap)(?=[-\d])/.exec(value);
  return m ? { code, operator: m[1] as Filter['operator'], value: value.slice(2) } : { code, operator: 'eq' as Filter['operator'], value };
}
