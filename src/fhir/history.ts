import { DEFAULT_MAX_SEARCH_COUNT, DEFAULT_SEARCH_COUNT, OperationOutcomeError, badRequest, notFound } from '@medplum/core';
import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import type { ResourceReader } from './repository-reads.ts';
import { fhirDateRange } from './search/dates.ts';
import { assertPaging } from './search/limits.ts';
import { countHistory, selectHistory } from './storage.ts';

export interface HistoryRequest {
  /** Several: system history (`GET /fhir/_history`) over those types. */
  resourceType: string | string[];
  /** Absent: type-level history. */
  id?: string;
  since?: string;
  /** `_at` (the version current at an instant): not supported, so refused rather than ignored. */
  at?: string;
  offset?: number;
  count?: number;
}

/** A `history` Bundle, newest version first; a delete is an entry with a request and no resource. */
export async function historyBundle(repo: ResourceReader, req: HistoryRequest): Promise<Bundle> {
  const count = Math.min(req.count ?? DEFAULT_SEARCH_COUNT, DEFAULT_MAX_SEARCH_COUNT);
  const offset = req.offset ?? 0;
  if (!Number.isInteger(count) || !Number.isInteger(offset) || count < 0 || offset < 0) {
    throw new OperationOutcomeError(badRequest('_count and _offset must be non-negative integers'));
  }
  assertPaging(offset);
  if (req.at !== undefined) throw new OperationOutcomeError(badRequest('_at is not supported; use _since'));
  // FHIR's own grammar, not Date.parse: JavaScript reads forms (and years) PostgreSQL refuses.
  const since = req.since === undefined ? undefined : fhirDateRange(req.since)?.low.toISOString();
  if (req.since !== undefined && since === undefined) {
    throw new OperationOutcomeError(badRequest(`_since must be a FHIR instant such as 2024-01-31T00:00:00Z, not '${req.since.slice(0, 64)}'`));
  }
  const query = { tenantId: repo.context.tenantId, resourceType: req.resourceType, id: req.id, since };
  const [rows, total] = await Promise.all([
    selectHistory(repo.conn, { ...query, offset, limit: count + 1 }),
    countHistory(repo.conn, query),
  ]);
  if (req.id && total === 0) throw new OperationOutcomeError(notFound);

  const system = Array.isArray(req.resourceType);
  const base = system ? `${repo.context.baseUrl}/_history` : `${repo.context.baseUrl}/${req.resourceType}${req.id ? `/${req.id}` : ''}/_history`;
  const entry: BundleEntry[] = rows.slice(0, count).map((row) => {
    const url = `${row.resourceType}/${row.id}`;
    const fullUrl = `${repo.context.baseUrl}/${url}`;
    const response = { lastModified: row.lastUpdated.toISOString(), etag: `W/"${row.versionId}"` };
    if (row.deleted) {
      return { fullUrl, request: { method: 'DELETE', url }, response: { ...response, status: '204' } };
    }
    const resource = JSON.parse(row.content) as Resource;
    const method = row.versionId === 1 ? 'POST' : 'PUT';
    return {
      fullUrl,
      resource,
      request: { method, url: method === 'POST' ? row.resourceType : url },
      response: { ...response, status: method === 'POST' ? '201' : '200' },
    };
  });
  const page = (o: number): string =>
    `${base}?_count=${count}&_offset=${o}${req.since ? `&_since=${encodeURIComponent(req.since)}` : ''}`;
  const link = [{ relation: 'self', url: page(offset) }];
  if (rows.length > count) link.push({ relation: 'next', url: page(offset + count) });
  return { resourceType: 'Bundle', type: 'history', total, link, entry };
}
