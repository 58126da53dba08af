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
  /** The code system a `code` element of this parameter is bound to (required binding to one system). */
  implicitSystem?: string;
  /** Patient/Person/Practitioner/RelatedPerson `phonetic`: indexed as Double Metaphone keys (phonetic.ts). */
  phonetic?: boolean;
  /** Reference parameters: the types a reference may point to. */
  targets?: string[];
}

/**
 * Core value sets whose codes come from another system than the ValueSet URL suggests. Every other
 * `http://hl7.org/fhir/ValueSet/x` bound with strength required draws from `http://hl7.org/fhir/x`.
 */
const VALUE_SET_SYSTEMS: Record<string, string | null> = {
  languages: 'urn:ietf:bcp:47',
  'all-languages': 'urn:ietf:bcp:47',
  mimetypes: 'urn:ietf:bcp:13',
  currencies: 'urn:iso:std:iso:4217',
  'ucum-units': 'http://unitsofmeasure.org',
  'all-types': null, // several systems
};

function implicitSystem(elements: { type?: { code: string }[]; binding?: { strength?: string; valueSet?: string } }[] | undefined): string | undefined {
  const systems = new Set<string | undefined>();
  for (const element of elements ?? []) {
    if (!element.type?.some((t) => t.code === 'code')) continue;
    const valueSet = element.binding?.strength === 'required' ? element.binding.valueSet?.split('|')[0] : undefined;
    const m = valueSet && /^http:\/\/hl7\.org\/fhir\/ValueSet\/([a-z0-9-]+)$/.exec(valueSet);
    if (!m) return undefined;
    const system = m[1] in VALUE_SET_SYSTEMS ? VALUE_SET_SYSTEMS[m[1]] : `http://hl7.org/fhir/${m[1]}`;
    systems.add(system ?? undefined);
  }
  return systems.size === 1 ? [...systems][0] : undefined;
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
    params.set(code, {
      code,
      type: definition.type!,
      kind,
      expression: details.parsedExpression,
      definition,
      implicitSystem: implicitSystem(details.elementDefinitions),
      phonetic: code === 'phonetic' && kind === 'string',
      targets: definition.target,
    });
  }
  cache.set(resourceType, params);
  return params;
}
