import { OperationOutcomeError, allOk, badRequest, isResource, normalizeOperationOutcome } from '@medplum/core';
import type { FhirRepository, FhirRequest, FhirResponse, FhirRouter } from '@medplum/fhir-router';
import type { Parameters, Resource } from '@medplum/fhirtypes';
import { validateResource } from '../profiles/index.ts';
import type { PostgresRepository } from './repository.ts';
import { outcome } from './outcomes.ts';

/** Adds what @medplum/fhir-router's FhirRouter lacks: type-level history and $validate. */
export function addOperations(router: FhirRouter): void {
  router.add('GET', ':resourceType/_history', typeHistory, 'history-type');
  router.add('GET', '_history', typeHistory, 'history-system');
  router.add('POST', ':resourceType/$validate', validate, 'operation');
  router.add('POST', ':resourceType/:id/$validate', validate, 'operation');
}

async function typeHistory(req: FhirRequest, repo: FhirRepository): Promise<FhirResponse> {
  const pg = repo as PostgresRepository;
  const one = (name: string): string | undefined => {
    const v = req.query[name];
    return Array.isArray(v) ? v.at(-1) : v;
  };
  const integer = (name: string): number | undefined => (one(name) === undefined ? undefined : Number(one(name)));
  const options = { since: one('_since'), at: one('_at'), count: integer('_count'), offset: integer('_offset') };
  // No :resourceType: system history (GET /fhir/_history).
  const bundle = req.params.resourceType ? await pg.readTypeHistory(req.params.resourceType, options) : await pg.readSystemHistory(options);
  return [allOk, bundle];
}

/**
 * `$validate` (https://hl7.org/fhir/R4/resource-operation-validate.html): answers 200 with an
 * OperationOutcome whether or not the resource is valid; 4xx only when validation cannot run.
 */
async function validate(req: FhirRequest): Promise<FhirResponse> {
  const body = req.body as Resource | undefined;
  const resource = isResource(body, 'Parameters')
    ? (body as Parameters).parameter?.find((p) => p.name === 'resource')?.resource
    : body;
  if (!isResource(resource)) throw new OperationOutcomeError(badRequest('Body must be a resource or Parameters with a resource'));
  if (resource.resourceType !== req.params.resourceType) {
    throw new OperationOutcomeError(badRequest(`Expected a ${req.params.resourceType}, got ${resource.resourceType}`));
  }
  try {
    validateResource(resource);
  } catch (err) {
    const result = normalizeOperationOutcome(err);
    return [allOk, { ...result, id: undefined }];
  }
  return [allOk, outcome('information', 'informational', 'Validation successful: no issues')];
}
