import { OperationOutcomeError, allOk, badRequest } from '@medplum/core';
import type { Filter, SearchRequest } from '@medplum/core';
import type { FhirRepository, FhirRequest, FhirResponse, FhirRouter } from '@medplum/fhir-router';
import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import { notFoundError, outcome } from './outcomes.ts';
import type { PostgresRepository } from './repository.ts';
import { parseFhirSearch } from './search/parse.ts';

/**
 * The Patient compartment (R4 compartmentdefinition-patient.html), for the types we serve: which
 * reference parameters put a resource in a patient's compartment. Our PatientCredit belongs by its
 * `patient`. A type absent here is in no patient's compartment.
 */
export const PATIENT_COMPARTMENT: Record<string, string[]> = {
  Patient: ['link'],
  RelatedPerson: ['patient'],
  Encounter: ['patient'],
  Coverage: ['policy-holder', 'subscriber', 'beneficiary', 'payor'],
  Claim: ['patient', 'payee'],
  ClaimResponse: ['patient'],
  Basic: ['patient', 'author'],
  PatientCredit: ['patient'],
};

/** Most resources of one type $everything returns: beyond it, page that type's compartment search. */
export const EVERYTHING_PER_TYPE = 1000;

/** `GET Patient/{id}/{type}`, `GET Patient/{id}/*` and `GET Patient/{id}/$everything`. */
export function addCompartmentRoutes(router: FhirRouter): void {
  router.add('GET', ':resourceType/:id/:compartmentType', compartmentSearch, 'search-type');
  router.add('GET', ':resourceType/:id/$everything', everything, 'operation');
}

/** The filter that confines a search to `Patient/{id}`'s compartment (search/chain.ts compiles it). */
export function inCompartment(id: string): Filter {
  return { code: '_compartment', operator: 'eq' as Filter['operator'], value: `Patient/${id}` };
}

function assertPatient(req: FhirRequest): void {
  if (req.params.resourceType !== 'Patient') throw notFoundError(`Only the Patient compartment is served, not ${req.params.resourceType}`);
}

async function compartmentSearch(req: FhirRequest, repo: FhirRepository): Promise<FhirResponse> {
  assertPatient(req);
  const { id, compartmentType } = req.params;
  if (compartmentType === '*') return everything(req, repo);
  if (!PATIENT_COMPARTMENT[compartmentType]) {
    throw new OperationOutcomeError(badRequest(`${compartmentType} is not in the Patient compartment (it holds ${Object.keys(PATIENT_COMPARTMENT).join(', ')})`));
  }
  const search = parseFhirSearch(compartmentType, req.query);
  search.filters = [...(search.filters ?? []), inCompartment(id)];
  return [allOk, await repo.search(search)];
}

/**
 * Everything in the patient's compartment, the patient first, in one searchset: the types the
 * caller may search (an `outcome` entry names the others), each up to EVERYTHING_PER_TYPE (more is
 * a 400 naming the type, not a silently truncated record).
 */
async function everything(req: FhirRequest, repo: FhirRepository): Promise<FhirResponse> {
  assertPatient(req);
  const extra = Object.keys(req.query).filter((k) => k !== '_format' && k !== '_pretty');
  if (extra.length) throw new OperationOutcomeError(badRequest(`$everything takes no parameters here (got ${extra.join(', ')})`));
  const pg = repo as PostgresRepository;
  const { id } = req.params;
  const patient = await repo.readResource('Patient', id);
  const entry: BundleEntry[] = [{ fullUrl: `${pg.context.baseUrl}/Patient/${id}`, resource: patient, search: { mode: 'match' } }];
  const omitted: string[] = [];
  for (const type of Object.keys(PATIENT_COMPARTMENT)) {
    if (!pg.context.access.allows(type, 's')) {
      omitted.push(type);
      continue;
    }
    const search: SearchRequest = { resourceType: type as SearchRequest['resourceType'], filters: [inCompartment(id)], count: EVERYTHING_PER_TYPE + 1 };
    const found = await repo.searchResources(search);
    if (found.length > EVERYTHING_PER_TYPE) {
      throw new OperationOutcomeError(badRequest(`The patient has more than ${EVERYTHING_PER_TYPE} ${type} resources; page them with GET Patient/${id}/${type}`));
    }
    for (const resource of found as Resource[]) {
      if (resource.resourceType === 'Patient' && resource.id === id) continue;
      entry.push({ fullUrl: `${pg.context.baseUrl}/${resource.resourceType}/${resource.id}`, resource, search: { mode: 'match' } });
    }
  }
  if (omitted.length) {
    const text = `Not included: ${omitted.join(', ')} (the access token's scopes do not allow searching them)`;
    entry.push({ resource: outcome('warning', 'suppressed', text), search: { mode: 'outcome' } });
  }
  const bundle: Bundle = { resourceType: 'Bundle', type: 'searchset', total: entry.filter((e) => e.search?.mode === 'match').length, entry };
  return [allOk, bundle];
}
