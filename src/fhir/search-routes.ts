import { allOk } from '@medplum/core';
import type { FhirRepository, FhirRequest, FhirResponse, FhirRouteHandler, FhirRouter, HttpMethod } from '@medplum/fhir-router';
import { parseFhirSearch } from './search/parse.ts';

/**
 * Replaces the handler FhirRouter registered for `method path` (its routes are matched first, so
 * adding one beside it would never be reached).
 */
export function replaceRoute(router: FhirRouter, method: HttpMethod, path: string, handler: FhirRouteHandler): void {
  const segments = path.split('/').filter(Boolean);
  const route = router.router.routes.find(
    (r) => r.method === method && r.path.length === segments.length && r.path.every((s, i) => (s.param ? `:${s.value}` : s.value) === segments[i]),
  );
  if (!route) throw new Error(`FhirRouter has no route ${method} ${path} to replace`);
  route.handler = handler;
}

/** Type-level search, GET and POST _search, parsed by search/parse.ts rather than core alone. */
export function replaceSearchRoutes(router: FhirRouter): void {
  replaceRoute(router, 'GET', ':resourceType', search);
  replaceRoute(router, 'POST', ':resourceType/_search', searchByPost);
}

async function search(req: FhirRequest, repo: FhirRepository): Promise<FhirResponse> {
  return [allOk, await repo.search(parseFhirSearch(req.params.resourceType, req.query))];
}

async function searchByPost(req: FhirRequest, repo: FhirRepository): Promise<FhirResponse> {
  const form = (req.body ?? {}) as Record<string, string | string[] | undefined>;
  return [allOk, await repo.search(parseFhirSearch(req.params.resourceType, form))];
}
