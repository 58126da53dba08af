import { Decimal } from 'decimal.js';
import {
  OperationOutcomeError,
  crawlTypedValue,
  isResourceType,
  toTypedValue,
  validateResource as validateWithCore,
  type TypedValueWithPath,
} from '@medplum/core';
import type {
  Coding,
  CodeableConcept,
  Extension,
  OperationOutcomeIssue,
  Resource,
  StructureDefinition,
} from '@medplum/fhirtypes';
import { loadProfiles, getOwnStructureDefinition } from './load.ts';
import { CANONICAL_BASE } from './constants.ts';
import { ensureR4ResourceType } from './r4.ts';
import { expandValueSet } from './terminology.ts';
import type { AnyResource } from './types.ts';

/**
 * Validates a resource; throws OperationOutcomeError (HTTP 400: the issues carry no id and no
 * `exception` code) whose issues name the offending element in `expression` (e.g. `Claim.status`,
 * `PatientCredit.allocation[0].amount`). Checks, all in one pass so every problem is reported:
 * - structure against the R4 definition of the type (PatientCredit: our definition), by
 *   @medplum/core: cardinality, JSON types, primitive formats, unknown elements, error invariants;
 * - `required` bindings whose value set we can expand (core does not check codes);
 * - our extensions (url under CANONICAL_BASE): defined in fhir-profiles/, context and value type;
 * - each of our profiles named in meta.profile (a profile we do not define is ignored).
 * Warnings (e.g. a Reference to an unexpected type) do not make it throw.
 */
export function validateResource(resource: AnyResource): void {
  loadProfiles();
  const issues: OperationOutcomeIssue[] = [];
  const resourceType = (resource as { resourceType?: unknown } | undefined)?.resourceType;
  if (typeof resourceType === 'string') ensureR4ResourceType(resourceType);
  if (typeof resourceType !== 'string' || !isResourceType(resourceType)) {
    throw new OperationOutcomeError({
      resourceType: 'OperationOutcome',
      issue: [
        {
          severity: 'error',
          code: 'structure',
          details: { text: `Unknown resource type: ${String(resourceType)}` },
          expression: ['resourceType'],
        },
      ],
    });
  }

  checkPropertyNames(resource, resourceType, issues);
  // A name that reaches Object.prototype must not reach the loaders or core either.
  if (issues.length > 0) throw new OperationOutcomeError({ resourceType: 'OperationOutcome', issue: issues });
  ensureContainedTypes(resource);
  pushAll(issues, runCore(resource, undefined));
  checkExtensions(resource, resourceType, resourceType, issues);
  if (!issues.some((i) => i.severity === 'error' || i.severity === 'fatal')) checkTypedValues(resource, issues);

  // Core reported a meta.profile that is not a list of strings; only the strings can name ours.
  const profiles: unknown[] = Array.isArray(resource.meta?.profile) ? resource.meta.profile : [];
  profiles.forEach((url, i) => {
    if (typeof url !== 'string') {
      issues.push(error('structure', `${resourceType}.meta.profile[${i}]`, 'A profile must be a canonical URL (a string)'));
      return;
    }
    const sd = getOwnStructureDefinition(url);
    if (!sd) {
      return; // not ours: ignored
    }
    if (sd.kind !== 'resource' || sd.type !== resourceType) {
      issues.push(
        error('structure', `${resourceType}.meta.profile[${i}]`, `Profile ${url} does not apply to ${resourceType}`)
      );
    } else if (sd.derivation !== 'specialization') {
      // A constraint profile of ours on an R4 type (none yet); the type's own definition was checked above.
      pushAll(issues, runCore(resource, sd));
    }
  });

  if (issues.some((issue) => issue.severity === 'error' || issue.severity === 'fatal')) {
    throw new OperationOutcomeError({ resourceType: 'OperationOutcome', issue: capped(dedupe(issues)) });
  }
}

/** Indexes the R4 definitions of contained resources' types that are not loaded yet (r4.ts). */
function ensureContainedTypes(resource: unknown): void {
  const contained = (resource as { contained?: unknown }).contained;
  if (!Array.isArray(contained)) return;
  for (const r of contained) {
    const type = (r as { resourceType?: unknown } | null)?.resourceType;
    if (typeof type === 'string') {
      ensureR4ResourceType(type);
      ensureContainedTypes(r);
    }
  }
}

/** Core's structural validation plus our required-binding check, against the type or a profile. */
function runCore(resource: AnyResource, profile: StructureDefinition | undefined): OperationOutcomeIssue[] {
  const tokens: Record<string, TypedValueWithPath[]> = {};
  const issues: OperationOutcomeIssue[] = [];
  try {
    // Core's signature is typed for R4 resources; PatientCredit is registered with core at load time.
    pushAll(issues, validateWithCore(resource as Resource, { profile, collect: { tokens } }));
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      pushAll(issues, err.outcome.issue ?? []);
    } else {
      issues.push(error('processing', resource.resourceType, `Validation failed: ${(err as Error).message}`));
    }
  }
  for (const [valueSetUrl, values] of Object.entries(tokens)) {
    const expansion = expandValueSet(valueSetUrl);
    if (!expansion) {
      continue;
    }
    for (const v of values) {
      if (!inValueSet(v, expansion)) {
        issues.push(
          error(
            'code-invalid',
            v.path,
            `Value ${JSON.stringify(displayValue(v))} is not in the required value set ${valueSetUrl.split('|')[0]}`
          )
        );
      }
    }
  }
  return issues;
}

function inValueSet(v: TypedValueWithPath, expansion: ReturnType<typeof expandValueSet> & object): boolean {
  const matchesCoding = (c: Coding): boolean =>
    c.code !== undefined && (c.system ? expansion.pairs.has(`${c.system}|${c.code}`) : expansion.codes.has(c.code));
  switch (v.type) {
    case 'code':
    case 'string':
    case 'uri':
      return typeof v.value !== 'string' || expansion.codes.has(v.value);
    case 'Coding':
      return matchesCoding(v.value as Coding);
    case 'CodeableConcept': {
      // A text-only CodeableConcept is accepted (lenient); if codings are given, one must match.
      const codings = (v.value as CodeableConcept).coding ?? [];
      return codings.length === 0 || codings.some(matchesCoding);
    }
    default:
      return true; // Quantity units (UCUM) are not checked
  }
}

function displayValue(v: TypedValueWithPath): unknown {
  if (v.type === 'Coding') {
    const c = v.value as Coding;
    return c.system ? `${c.system}|${c.code}` : c.code;
  }
  if (v.type === 'CodeableConcept') {
    return ((v.value as CodeableConcept).coding ?? []).map((c) => (c.system ? `${c.system}|${c.code}` : c.code));
  }
  return v.value;
}

/**
 * Walks the resource (not into contained resources' own types) and checks every extension whose url
 * is one of our extension StructureDefinitions: its context must be the element it sits on, it must
 * have exactly one value of an allowed type (and no nested extensions), and a Reference value must
 * point to an allowed type. Core already validated the value's own structure.
 */
function checkExtensions(
  value: unknown,
  elementPath: string,
  displayPath: string,
  issues: OperationOutcomeIssue[]
): void {
  if (Array.isArray(value)) {
    value.forEach((item, i) => checkExtensions(item, elementPath, `${displayPath}[${i}]`, issues));
    return;
  }
  if (!value || typeof value !== 'object') {
    return;
  }
  const obj = value as Record<string, unknown>;
  for (const [key, child] of Object.entries(obj)) {
    if (key === 'contained' && Array.isArray(child)) {
      child.forEach((r, i) => {
        const type = (r as Resource | undefined)?.resourceType;
        if (typeof type === 'string') {
          checkExtensions(r, type, `${displayPath}.contained[${i}]`, issues);
        }
      });
    } else if ((key === 'extension' || key === 'modifierExtension') && Array.isArray(child)) {
      child.forEach((ext, i) => {
        const path = `${displayPath}.${key}[${i}]`;
        checkOneExtension(ext as Extension, elementPath, path, issues);
        checkExtensions(ext, 'Extension', path, issues);
      });
    } else if (typeof child === 'object' && child !== null) {
      checkExtensions(child, `${elementPath}.${key.startsWith('_') ? key.slice(1) : key}`, `${displayPath}.${key}`, issues);
    }
  }
}

function checkOneExtension(ext: Extension, elementPath: string, path: string, issues: OperationOutcomeIssue[]): void {
  const sd = ext?.url ? getOwnStructureDefinition(ext.url) : undefined;
  if (!sd || sd.type !== 'Extension') {
    // Ours must be defined in fhir-profiles/ (others' extensions are theirs to define).
    if (typeof ext?.url === 'string' && ext.url.startsWith(`${CANONICAL_BASE}/`)) {
      issues.push(error('structure', path, `Extension ${ext.url} is not defined (our extensions are in fhir-profiles/)`));
    }
    return;
  }
  const contexts = (sd.context ?? []).map((c) => c.expression);
  if (!contexts.includes(elementPath)) {
    issues.push(error('structure', path, `Extension ${ext.url} is not allowed on ${elementPath} (context: ${contexts.join(', ')})`));
  }
  const elements = sd.snapshot?.element ?? [];
  const valueElement = elements.find((e) => e.path === 'Extension.value[x]');
  const allowed = valueElement?.type ?? [];
  const valueKeys = Object.keys(ext).filter((k) => /^value[A-Z]/.test(k));
  if (ext.extension?.length && elements.find((e) => e.path === 'Extension.extension')?.max === '0') {
    issues.push(error('structure', `${path}.extension`, `Extension ${ext.url} has no nested extensions`));
  }
  const expected = allowed.map((t) => 'value' + t.code.charAt(0).toUpperCase() + t.code.slice(1));
  if (valueKeys.length !== 1) {
    if ((valueElement?.min ?? 0) > 0 || valueKeys.length > 1) {
      issues.push(error('structure', `${path}.value[x]`, `Extension ${ext.url} needs exactly one of ${expected.join(', ')}`));
    }
    return;
  }
  const key = valueKeys[0];
  const index = expected.indexOf(key);
  if (index === -1) {
    issues.push(error('structure', `${path}.${key}`, `Extension ${ext.url} takes ${expected.join(' or ')}, not ${key}`));
    return;
  }
  const targets = allowed[index].targetProfile?.map((p) => p.slice(p.lastIndexOf('/') + 1));
  const reference = (ext as { valueReference?: { reference?: string } }).valueReference?.reference;
  if (targets?.length && reference && !reference.startsWith('#')) {
    const type = referenceType(reference);
    if (type && !targets.includes(type)) {
      issues.push(
        error('structure', `${path}.valueReference`, `Extension ${ext.url} must reference ${targets.join(' or ')}, not ${type}`)
      );
    }
  }
}

/** The resource type of a relative (`Patient/1`), absolute (`https://x/fhir/Patient/1`) or conditional (`Patient?x=y`) reference. */
function referenceType(reference: string): string | undefined {
  if (reference.includes('?')) {
    return reference.split('?')[0].split('/').pop();
  }
  const parts = reference.split('/');
  const historyAt = parts.lastIndexOf('_history');
  const upto = historyAt === -1 ? parts : parts.slice(0, historyAt);
  return upto.length >= 2 ? upto[upto.length - 2] : undefined;
}

/**
 * Largest absolute Money.value a resource may carry: billing/money.ts's MAX_AMOUNT (the test
 * asserts they agree). Billing sums such amounts into numeric(18,2) totals, so a larger one would
 * be stored here and then fail every payment on its claim.
 */
export const MAX_MONEY_VALUE = '9999999999999.99';
const MONEY_LIMIT = new Decimal(MAX_MONEY_VALUE);

/**
 * txt-1's rule that core does not check: a narrative is XHTML without active content. A client that
 * displays `text.div` must not be handed a script.
 */
const ACTIVE_ELEMENT = /^<\s*\/?\s*(script|iframe|object|embed|form|input|button|link|meta|style|base|frame|frameset|applet)\b/i;
const ACTIVE_ATTRIBUTE = /\son[a-z]+\s*=|\b(?:href|src|action|formaction|xlink:href)\s*=\s*["']?\s*(?:javascript|vbscript|data)\s*:/i;

/** Looks at each tag once (linear in the length: no regex runs over the whole text). */
function hasActiveContent(div: string): boolean {
  for (let start = div.indexOf('<'); start !== -1; ) {
    const end = div.indexOf('>', start);
    const tag = div.slice(start, end === -1 ? undefined : end);
    if (ACTIVE_ELEMENT.test(tag) || ACTIVE_ATTRIBUTE.test(tag)) return true;
    if (end === -1) return false;
    start = div.indexOf('<', end);
  }
  return false;
}

/**
 * What needs the element's type (from the definitions, so not any `value`): lists are arrays, every
 * Money within the money limit, every Narrative free of active content.
 */
function checkTypedValues(resource: AnyResource, issues: OperationOutcomeIssue[]): void {
  crawlTypedValue(toTypedValue(resource), {
    // Core takes a lone value where the definition says a list; every consumer after it iterates.
    visitProperty: (parent, key, path, _values, schema) => {
      const raw = (parent.value as Record<string, unknown> | undefined)?.[key];
      const element = schema.elements[key];
      if (!element || raw === undefined) return;
      if (element.isArray && !Array.isArray(raw)) issues.push(error('structure', path, `${path} must be a JSON array`));
      if (!element.isArray && Array.isArray(raw)) issues.push(error('structure', path, `${path} takes one value, not a JSON array`));
    },
    onEnterObject: (path, typed) => {
      if (typed.type === 'Money') {
        const value = (typed.value as { value?: unknown } | undefined)?.value;
        if (typeof value === 'number' && new Decimal(String(value)).abs().gt(MONEY_LIMIT)) {
          issues.push(error('value', `${path}.value`, `Money value ${value} is beyond the limit of ${MAX_MONEY_VALUE}`));
        }
      } else if (typed.type === 'Narrative') {
        const div = (typed.value as { div?: unknown } | undefined)?.div;
        if (typeof div === 'string' && hasActiveContent(div)) {
          issues.push(error('value', `${path}.div`, 'The narrative contains active content (scripts, frames, forms, event handlers or script URLs), which FHIR forbids (txt-1)'));
        }
      }
    },
  });
}

/**
 * Property names that are properties of every object (`__proto__`, `constructor`, `toString`, ...)
 * slip past core's lookup of element definitions, so they are refused here, anywhere in the
 * resource, as is a nested resourceType of that kind. Iterative: depth costs no stack.
 */
function checkPropertyNames(resource: AnyResource, resourceType: string, issues: OperationOutcomeIssue[]): void {
  const stack: [unknown, string][] = [[resource, resourceType]];
  while (stack.length > 0) {
    const [value, path] = stack.pop()!;
    if (!value || typeof value !== 'object') continue;
    if (Array.isArray(value)) {
      value.forEach((item, i) => stack.push([item, `${path}[${i}]`]));
      continue;
    }
    for (const [key, child] of Object.entries(value)) {
      const element = key.startsWith('_') ? key.slice(1) : key;
      if (key in Object.prototype || element in Object.prototype) {
        issues.push(error('structure', `${path}.${key}`, `Invalid additional property "${key}"`));
      } else if (key === 'resourceType' && typeof child === 'string' && child in Object.prototype) {
        issues.push(error('structure', `${path}.resourceType`, `Unknown resource type: ${child}`));
      } else {
        stack.push([child, `${path}.${key}`]);
      }
    }
  }
}

/** At most this many issues are reported: a list of 50,000 bad elements need not be answered 50,000 times. */
const MAX_ISSUES = 100;

function capped(issues: OperationOutcomeIssue[]): OperationOutcomeIssue[] {
  if (issues.length <= MAX_ISSUES) return issues;
  const more = issues.length - MAX_ISSUES;
  return [...issues.slice(0, MAX_ISSUES), { severity: 'error', code: 'too-costly', details: { text: `${more} more issues not listed` } }];
}

/** push(...items) overflows the stack for a very long list; this does not. */
function pushAll<T>(target: T[], items: readonly T[]): void {
  for (const item of items) target.push(item);
}

function error(code: OperationOutcomeIssue['code'], expression: string, text: string): OperationOutcomeIssue {
  return { severity: 'error', code, details: { text }, expression: [expression] };
}

function dedupe(issues: OperationOutcomeIssue[]): OperationOutcomeIssue[] {
  const seen = new Set<string>();
  return issues.filter((issue) => {
    const key = JSON.stringify([issue.severity, issue.code, issue.details?.text, issue.expression]);
    if (seen.has(key)) {
      return false;
    }
    seen.add(key);
    return true;
  });
}
