import { DEFAULT_MAX_SEARCH_COUNT, DEFAULT_SEARCH_COUNT, OperationOutcomeError, badRequest, formatSearchQuery } from '@medplum/core';
import type { SearchRequest } from '@medplum/core';
import type { Bundle, BundleEntry, BundleLink } from '@medplum/fhirtypes';
import type { ResourceReader } from '../repository-reads.ts';
import { searchResources } from './search.ts';

/**
 * System-level search (`GET /fhir?_type=Claim,ClaimResponse&_lastUpdated=ge...`): the search of
 * each type in turn, each compiled and index-driven as a type-level one, ordered by type then id and
 * paged by a keyset `_cursor` of `Type/id`, so pages neither skip nor repeat. Every parameter must
 * be one each type has (a 400 names the type that lacks it); `_sort` and `_offset` are refused.
 */
export async function searchSystem(repo: ResourceReader, request: SearchRequest): Promise<Bundle> {
  const types = [...new Set(request.types ?? [])].sort();
  if (types.length === 0) throw new OperationOutcomeError(badRequest('A system-level search needs _type'));
  if (request.sortRules?.length || request.offset) throw new OperationOutcomeError(badRequest('A system-level search is ordered by type and id: _sort and _offset are not supported'));
  const count = Math.min(request.count ?? DEFAULT_SEARCH_COUNT, DEFAULT_MAX_SEARCH_COUNT);
  const [cursorType, cursorId] = request.cursor ? request.cursor.split('/') : [];
  if (request.cursor && (!cursorType || !cursorId || !types.includes(cursorType as (typeof types)[number]))) {
    throw new OperationOutcomeError(badRequest('_cursor must be Type/id from a next link'));
  }
  const entry: BundleEntry[] = [];
  let total: number | undefined = request.total === 'accurate' || count === 0 ? 0 : undefined;
  let next: string | undefined;
  for (const type of types) {
    const before = cursorType !== undefined && type < cursorType;
    const wanted = count - entry.filter((e) => e.search?.mode === 'match').length;
    if ((before || next) && total === undefined) continue;
    const page = await searchResources(repo, {
      ...request,
      resourceType: type as SearchRequest['resourceType'],
      types: undefined,
      count: before || next ? 0 : wanted,
      cursor: type === cursorType ? cursorId : undefined,
      total: total === undefined ? undefined : 'accurate',
      offset: undefined,
    });
    if (total !== undefined) total += page.total ?? 0;
    if (before || next) continue;
    entry.push(...(page.entry ?? []));
    const more = page.link?.find((l) => l.relation === 'next');
    const last = page.entry?.filter((e) => e.search?.mode === 'match').at(-1)?.resource;
    if (more && last) next = `${type}/${last.id}`;
    else if (wanted <= (page.entry ?? []).filter((e) => e.search?.mode === 'match').length && type !== types.at(-1) && last) next = `${type}/${last.id}`;
  }
  const url = (cursor?: string): string =>
    `${repo.context.baseUrl}${formatSearchQuery({ ...request, resourceType: 'MultipleTypes' as SearchRequest['resourceType'], cursor, count, offset: undefined })}`;
  const link: BundleLink[] = [{ relation: 'self', url: url(request.cursor) }];
  if (next) link.push({ relation: 'next', url: url(next) });
  return { resourceType: 'Bundle', type: 'searchset', ...(total !== undefined && { total }), link, entry };
}
