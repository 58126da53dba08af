import { OperationOutcomeError, applyPatch, badRequest, fhirpathPatchTypedValue, isResource, parseFhirPathPatchParameters, toTypedValue } from '@medplum/core';
import type { Operation } from '@medplum/core';
import type { Parameters, Resource } from '@medplum/fhirtypes';

// JSON Patch (RFC 6902) as a client sends it: checked whole before the stored resource is read, so
// a malformed operation is a 400 that names it, never an exception from core's pointer parser.

const PATCH_OPS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);
/** RFC 6901: empty, or segments after '/', where '~' is only ever '~0' or '~1'. */
const POINTER = /^(?:\/(?:[^~/]|~[01])*)*$/;
/** Segments that would reach an object's prototype instead of a FHIR element. */
const PROTOTYPE_SEGMENTS = new Set(['__proto__', 'constructor', 'prototype']);

/** A FHIRPath Patch (R4 fhirpatch.html): a Parameters resource of `operation`s. */
export function isFhirPathPatch(patch: unknown): patch is Parameters {
  return isResource(patch, 'Parameters');
}

/**
 * Refuses, before anything is read, a patch that is neither a list of RFC 6902 operations nor a
 * FHIRPath Patch whose operations core can read.
 */
export function assertWellFormedPatch(patch: unknown): asserts patch is Operation[] | Parameters {
  if (isFhirPathPatch(patch)) {
    try {
      if (!patch.parameter?.length) throw new Error('it has no operation');
      parseFhirPathPatchParameters(patch);
    } catch (err) {
      throw new OperationOutcomeError(badRequest(`Invalid FHIRPath Patch: ${(err as Error).message}`));
    }
    return;
  }
  if (!Array.isArray(patch)) {
    throw new OperationOutcomeError(badRequest('A patch is JSON Patch (application/json-patch+json) or a FHIRPath Patch Parameters resource'));
  }
  const refuse = (i: number, text: string): never => {
    throw new OperationOutcomeError(badRequest(`Invalid JSON Patch: operation ${i} ${text}`));
  };
  patch.forEach((op, i) => {
    if (!op || typeof op !== 'object' || Array.isArray(op)) refuse(i, 'is not an object');
    const { op: name, path, from } = op as { op?: unknown; path?: unknown; from?: unknown };
    if (typeof name !== 'string' || !PATCH_OPS.has(name)) refuse(i, `has op ${JSON.stringify(name)}; expected one of ${[...PATCH_OPS].join(', ')}`);
    const pointers: [string, unknown][] = [['path', path]];
    if (name === 'move' || name === 'copy') pointers.push(['from', from]);
    for (const [field, pointer] of pointers) {
      if (typeof pointer !== 'string' || !POINTER.test(pointer)) refuse(i, `has ${field} ${JSON.stringify(pointer)}, not a JSON Pointer (like /name/0/family)`);
      if ((pointer as string).split('/').some((s) => PROTOTYPE_SEGMENTS.has(s))) refuse(i, `has ${field} ${JSON.stringify(pointer)}, which names no FHIR element`);
    }
    if ((name === 'add' || name === 'replace' || name === 'test') && !('value' in (op as object))) refuse(i, `(${name}) needs a value`);
  });
}

/** core's applyPatch (or FHIRPath Patch), in place; what it reports or throws on a well-formed patch is still about the patch (400). */
export function applyPatchOrRefuse(resource: Resource, patch: Operation[] | Parameters): void {
  let errors: Error[];
  try {
    if (isFhirPathPatch(patch)) {
      fhirpathPatchTypedValue(toTypedValue(resource), parseFhirPathPatchParameters(patch));
      errors = [];
    } else errors = applyPatch(resource, patch).filter((e) => e !== null) as Error[];
  } catch (err) {
    errors = [err instanceof Error ? err : new Error(String(err))];
  }
  if (errors.length === 0) return;
  const more = errors.length > 10 ? `; and ${errors.length - 10} more` : '';
  throw new OperationOutcomeError(badRequest(`Invalid JSON Patch: ${errors.slice(0, 10).map((e) => e.message).join('; ')}${more}`));
}
