import { DEFAULT_MAX_SEARCH_COUNT, DEFAULT_SEARCH_COUNT, OperationOutcomeError, badRequest, formatSearchQuery } from '@medplum/core';
import type { SearchRequest } from '@medplum/core';
import { getExtraEntries } from '@medplum/fhir-router';
import type { Bundle, BundleEntry, BundleLink, Resource } from '@medplum/fhirtypes';
import type { ResourceReader } from '../repository-reads.ts';
import { getDataType } from '@medplum/core';
import { compileSearch, countStatement, pageStatement, usesKeyset } from './query.ts';

/** Runs a search and assembles the `searchset` Bundle: matches, `_include`s, total and paging links. */
export async function searchResources(repo: ResourceReader, request: SearchRequest): Promise<Bundle> {
  const count = Math.min(request.count ?? DEFAULT_SEARCH_COUNT, DEFAULT_MAX_SEARCH_COUNT);
  const offset = request.offset ?? 0;
  if (!Number.isInteger(count) || !Number.isInteger(offset) || count < 0 || offset < 0) {
    throw new OperationOutcomeError(badRequest('_count and _offset must be non-negative integers'));
  }
  const localBases = repo.localBases;
  const search = compileSearch(repo.context.tenantId, request, { localBases });
  for (const type of search.otherTypes) repo.allowSearchOf(type);
  // _summary=count arrives as _count=0 with a total; data drops the narrative; true keeps the
  // summary elements, text the narrative (with the mandatory elements, as R4 says, both SUBSETTED).
  const summaryCount = request.summary === undefined && count === 0;

  const totalWanted = request.total === 'accurate' || request.total === 'estimate' || summaryCount;
  const total = totalWanted ? await countMatches(repo, request) : undefined;

  // One row more than the page tells whether a next page exists, without counting.
  const rows =
    count === 0
      ? []
      : await repo.conn.query<{ content: string }>(pageStatement(search), [...search.params, count + 1, offset]);
  const resources = rows.slice(0, count).map((r) => JSON.parse(r.content) as Resource);

  const fullUrl = (type: string, id: string): string => `${repo.context.baseUrl}/${type}/${id}`;
  const entry: BundleEntry[] = resources.map((resource) => ({
    fullUrl: fullUrl(resource.resourceType, resource.id!),
    resource: shaped(resource, request),
    search: { mode: 'match' },
  }));
  if (request.include?.length || request.revInclude?.length) {
    const included: BundleEntry[] = [];
    await getExtraEntries(repo, request, resources, included, { fullUrl });
    entry.push(...included.map((e) => ({ ...e, search: { mode: 'include' as const } })));
  }

  const link: BundleLink[] = [{ relation: 'self', url: pageUrl(repo, request, count, offset) }];
  if (rows.length > count) {
    // Keyset: the next page starts after the last id (query.ts), whatever changed in between.
    const next = usesKeyset(request)
      ? pageUrl(repo, { ...request, cursor: resources[resources.length - 1].id }, count, 0)
      : pageUrl(repo, request, count, offset + count);
    link.push({ relation: 'next', url: next });
  }
  if (offset > 0 && request.cursor === undefined) link.push({ relation: 'previous', url: pageUrl(repo, request, count, Math.max(0, offset - count)) });

  return { resourceType: 'Bundle', type: 'searchset', ...(total !== undefined && { total }), link, entry };
}

async function countMatches(repo: ResourceReader, request: SearchRequest): Promise<number> {
  const search = compileSearch(repo.context.tenantId, { ...request, cursor: undefined }, { sort: false, localBases: repo.localBases });
  const rows = await repo.conn.query<{ n: string }>(countStatement(search), search.params);
  return Number(rows[0].n);
}

function pageUrl(repo: ResourceReader, request: SearchRequest, count: number, offset: number): string {
  return `${repo.context.baseUrl}/${request.resourceType}${formatSearchQuery({ ...request, count, offset })}`;
}

/** `_summary=data`: everything but the narrative, tagged SUBSETTED. */
function withoutText(resource: Resource): Resource {
  const { text: _text, ...rest } = resource as Resource & { text?: unknown };
  return { ...rest, meta: { ...resource.meta, tag: [...(resource.meta?.tag ?? []), SUBSETTED] } } as Resource;
}

const SUBSETTED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED' };

/** The resource as `_elements` or `_summary` shape it. */
function shaped(resource: Resource, request: SearchRequest): Resource {
  if (request.fields) return subset(resource, request.fields);
  if (request.summary === 'data') return withoutText(resource);
  if (request.summary === 'true') return subset(resource, [...(getDataType(resource.resourceType)?.summaryProperties ?? [])]);
  if (request.summary === 'text') return subset(resource, ['text']);
  return resource;
}

/** `_elements` and `_summary`: the named top-level elements plus the mandatory ones (min ≥ 1, R4 search), tagged SUBSETTED. */
function subset(resource: Resource, names: string[]): Resource {
  const keep = new Set(['resourceType', 'id', 'meta', ...(getDataType(resource.resourceType)?.mandatoryProperties ?? []), ...names]);
  // A choice element (`value[x]`) is named without its suffix: valueQuantity is `value`.
  const kept = (key: string): boolean => keep.has(key) || [...keep].some((b) => key.startsWith(b) && /^[A-Z]/.test(key.slice(b.length)));
  const out = Object.fromEntries(Object.entries(resource).filter(([k]) => kept(k))) as Resource;
  out.meta = { ...resource.meta, tag: [...(resource.meta?.tag ?? []), SUBSETTED] };
  return out;
}
