import { OperationOutcomeError, allOk, badRequest, parseSearchRequest } from '@medplum/core';
import { BatchProcessor } from '@medplum/fhir-router';
import type { FhirRepository, FhirRequest, FhirResponse, FhirRouter } from '@medplum/fhir-router';
import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import { PostgresRepository } from './repository.ts';
import { replaceRoute } from './search-routes.ts';

/**
 * Batch and transaction (`POST /fhir` with a Bundle): FhirRouter's BatchProcessor, without its
 * hidden limits and with R4's answers.
 *
 * - BatchProcessor refuses a transaction of more than 50 updates, or of more than 8 entries when
 *   one is conditional (it wants SERIALIZABLE then). Neither is R4's: the Bundle's size is bounded
 *   by request-checks.ts (1,000 entries) and the transaction is SERIALIZABLE when it needs to be.
 * - A conditional update with no match and an id in the resource is an update of that id (R4;
 *   updateCreate), where BatchProcessor refuses the id.
 * - Each response entry carries `etag`, `lastModified` and a versioned `location`, and a write that
 *   created its resource (a PUT included) answers 201.
 *
 * BatchProcessor's limits are module constants checked in its `preprocess`; that step is replaced
 * here on the instance by the same work without the checks (its private methods are reached by
 * name, so a @medplum/fhir-router upgrade must be checked against test/fhir/transaction.test.ts).
 */
export function replaceBatchRoute(router: FhirRouter): void {
  replaceRoute(router, 'POST', '', processBundle);
}

interface BatchInternals {
  bundle: Bundle;
  bundleInfo: unknown;
  preprocessBundle(): Promise<unknown>;
  dispatchPreEvent(): void;
  resolveModificationIdentity(entry: BundleEntry, index: number): Promise<unknown>;
  resolvedIdentities: Record<string, string>;
}

async function processBundle(req: FhirRequest, repo: FhirRepository, router: FhirRouter): Promise<FhirResponse> {
  const bundle = req.body as Bundle;
  if (bundle.resourceType !== 'Bundle') return [badRequest('Not a bundle')];
  const processor = new BatchProcessor(router, repo, bundle, req);
  const internals = processor as unknown as BatchInternals;
  const resolveModification = internals.resolveModificationIdentity.bind(processor);
  processor.preprocess = async function preprocessWithoutLimits() {
    if (bundle.type !== 'batch' && bundle.type !== 'transaction') {
      throw new OperationOutcomeError(badRequest(`Unrecognized bundle type: ${bundle.type}`));
    }
    internals.bundleInfo = await internals.preprocessBundle();
    internals.dispatchPreEvent();
    return undefined as never; // run() does not read it; only the re-entrant flow (unused here) does
  };
  internals.resolveModificationIdentity = async (entry, index) => {
    const upsert = await updateAsCreate(repo, entry);
    if (!upsert) return resolveModification(entry, index);
    return { placeholder: entry.fullUrl ?? '', reference: upsert };
  };
  const result = await processor.run();
  return [allOk, withResponseMetadata(bundle, result)];
}

/**
 * A conditional PUT whose criteria match nothing and whose resource has an id: rewritten to a PUT
 * of that id, and its reference returned; undefined for every other entry.
 */
async function updateAsCreate(repo: FhirRepository, entry: BundleEntry): Promise<string | undefined> {
  const url = entry.request?.url ?? '';
  const resource = entry.resource;
  if (entry.request?.method !== 'PUT' || !url.includes('?') || !resource?.id) return undefined;
  const search = parseSearchRequest(url);
  if (!search.filters?.length) return undefined;
  const matches = await repo.searchResources({ ...search, count: 1, offset: 0, sortRules: undefined });
  if (matches.length > 0) return undefined;
  entry.request.url = `${resource.resourceType}/${resource.id}`;
  return entry.request.url;
}

/** etag, lastModified, and for writes a versioned location and 201 when created (R4 http.html#transaction-response). */
function withResponseMetadata(request: Bundle, bundle: Bundle): Bundle {
  (bundle.entry ?? []).forEach((entry, i) => {
    const resource: Resource | undefined = entry.resource;
    const response = entry.response;
    const versionId = resource?.meta?.versionId;
    if (!response || !resource?.id || !versionId || !response.status.startsWith('2')) return;
    if (resource.resourceType === 'Bundle' || resource.resourceType === 'OperationOutcome') return;
    response.etag = `W/"${versionId}"`;
    if (resource.meta?.lastUpdated) response.lastModified = resource.meta.lastUpdated;
    const method = request.entry?.[i]?.request?.method;
    if (method !== 'POST' && method !== 'PUT' && method !== 'PATCH') return;
    if (PostgresRepository.created(resource)) response.status = '201';
    response.location = `${resource.resourceType}/${resource.id}/_history/${versionId}`;
  });
  return bundle;
}
