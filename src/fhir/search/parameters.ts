import { getSearchParameterDetails } from '@medplum/core';
import type { FhirPathAtom } from '@medplum/core';
import type { SearchParameter } from '@medplum/fhirtypes';
import { getSearchParametersFor } from '../../profiles/index.ts';

/** Search parameters answered from columns of the `resource` table rather than the index tables. */
export const COLUMN_PARAMETERS = new Set(['_id', '_lastUpdated']);

/** Resource-level parameters we serve; the others core knows (_compartment, _project) are Medplum's own. */
const RESOURCE_PARAMETERS = new Set(['_id', '_lastUpdated', '_profile', '_tag', '_security', '_source']);

/** The index table a parameter type is stored in; composite and special are not indexed. */
export type IndexKind = 'token' | 'string' | 'reference' | 'date' | 'number';

const INDEX_KIND: Partial<Record<NonNullable<SearchParameter['type']>, IndexKind>> = {
  token: 'token',
  uri: 'token',
  string: 'string',
  reference: 'reference',
  date: 'date',
  number: 'number',
  quantity: 'number',
};

export interface IndexedParameter {
  code: string;
  type: NonNullable<SearchParameter['type']>;
  kind: IndexKind;
  expression: FhirPathAtom;
  definition: SearchParameter;
}

const cache = new Map<string, Map<string, IndexedParameter>>();

/**
 * The searchable parameters of a type, each with its FHIRPath expression narrowed to that type and
 * parsed once. A parameter missing here is not searchable on that type (a 400 for the client).
 */
export function searchableParameters(resourceType: string): Map<string, IndexedParameter> {
  let params = cache.get(resourceType);
  if (params) return params;
  params = new Map();
  for (const [code, definition] of Object.entries(getSearchParametersFor(resourceType))) {
    if (code.startsWith('_') && !RESOURCE_PARAMETERS.has(code)) continue;
    const kind = definition.type ? INDEX_KIND[definition.type] : undefined;
    if (!kind || !definition.expression) continue;
    const details = getSearchParameterDetails(resourceType, definition);
    if (!details.parsedExpression) continue;
    params.set(code, { code, type: definition.type!, kind, expression: details.parsedExpression, definition });
  }
  cache.set(resourceType, params);
  return params;
}
