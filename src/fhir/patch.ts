import { OperationOutcomeError, applyPatch, badRequest } from '@medplum/core';
import type { Operation } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';

// JSON Patch (RFC 6902) as a client sends it: checked whole before the stored resource is read, so
// a malformed operation is a 400 that names it, never an exception from core's pointer parser.

const PATCH_OPS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);
/** RFC 6901: empty, or segments after '/', where '~' is only ever '~0' or '~1'. */
const POINTER = /^(?:\/(?:[^~/]|~[01])*)*$/;
/** Segments that would reach an object's prototype instead of a FHIR element. */
const PROTOTYPE_SEGMENTS = new Set(['__proto__', 'constructor', 'prototype']);

/** Refuses, before anything is read, a patch that is not a list of RFC 6902 operations. */
export function assertWellFormedPatch(patch: unknown): asserts patch is Operation[] {
  if (!Array.isArray(patch)) {
    throw new OperationOutcomeError(badRequest('Only JSON Patch (application/json-patch+json) is supported'));
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

/** core's applyPatch, in place; what it reports or throws on a well-formed patch is still about the patch (400). */
export function applyPatchOrRefuse(resource: Resource, patch: Operation[]): void {
  let errors: Error[];
  try {
    errors = applyPatch(resource, patch).filter((e) => e !== null) as Error[];
  } catch (err) {
    errors = [err instanceof Error ? err : new Error(String(err))];
  }
  if (errors.length === 0) return;
  const more = errors.length > 10 ? `; and ${errors.length - 10} more` : '';
  throw new OperationOutcomeError(badRequest(`Invalid JSON Patch: ${errors.slice(0, 10).map((e) => e.message).join('; ')}${more}`));
}
