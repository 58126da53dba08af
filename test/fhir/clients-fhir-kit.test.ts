import { randomUUID } from 'node:crypto';
import { Client } from 'fhir-kit-client';
import type { FhirResource } from 'fhir-kit-client';
import type { Bundle, CapabilityStatement, Claim, Patient } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen } from '../support/listening.ts';
import type { ListeningApp } from '../support/listening.ts';
import { CLAIM_ID_SYSTEM, claim, patient } from '../support/fixtures.ts';

// fhir-kit-client's usual calls, unmodified, against the real server on a port of its own. The
// token URL is what the library discovers (smartAuthMetadata); the token is passed as its bearer.

let server: ListeningApp;
let fhir: Client;

beforeAll(async () => {
  server = await listen();
  const discovery = new Client({ baseUrl: server.fhirBase });
  const { tokenUrl } = await discovery.smartAuthMetadata();
  expect(tokenUrl?.href).toBe(`${server.origin}/oauth2/token`);
  fhir = new Client({ baseUrl: server.fhirBase, bearerToken: await server.clientCredentialsToken(tokenUrl!.href) });
});
afterAll(() => server.close());

// fhir-kit-client types every resource as its own FhirResource; ours are @medplum/fhirtypes.
const fhirResource = (resource: object): FhirResource => resource as FhirResource;
const got = async <T,>(answer: Promise<FhirResource> | undefined): Promise<T> => (await answer) as unknown as T;
const status = (error: unknown): number | undefined => (error as { response?: { status?: number } }).response?.status;

describe('fhir-kit-client', () => {
  it('reads the capabilities, and refuses without the bearer token', async () => {
    const capabilities = await got<CapabilityStatement>(fhir.capabilityStatement());
    expect(capabilities.fhirVersion).toBe('4.0.1');
    expect(capabilities.rest?.[0]?.resource?.some((r) => r.type === 'Claim')).toBe(true);
    const anonymous = new Client({ baseUrl: server.fhirBase });
    expect(status(await anonymous.read({ resourceType: 'Claim', id: 'x' }).catch((e: unknown) => e))).toBe(401);
  });

  it('creates, reads, vreads, updates, patches, reads history and deletes', async () => {
    const p = await got<Patient>(fhir.create({ resourceType: 'Patient', body: fhirResource(patient('Kit')) }));
    expect(p.meta?.versionId).toBe('1');
    expect((await got<Patient>(fhir.read({ resourceType: 'Patient', id: p.id! }))).name?.[0]?.family).toBe('Kit');
    const updated = await got<Patient>(fhir.update({ resourceType: 'Patient', id: p.id!, body: { ...p, gender: 'female' } }));
    expect(updated.meta?.versionId).toBe('2');
    const patched = await got<Patient>(fhir.patch({ resourceType: 'Patient', id: p.id!, jsonPatch: [{ op: 'replace', path: '/gender', value: 'male' }] }));
    expect([patched.meta?.versionId, patched.gender]).toEqual(['3', 'male']);
    expect((await got<Patient>(fhir.vread({ resourceType: 'Patient', id: p.id!, version: '2' }))).gender).toBe('female');
    const history = await got<Bundle>(fhir.resourceHistory({ resourceType: 'Patient', id: p.id! }));
    expect([history.type, history.entry?.map((e) => e.resource?.meta?.versionId)]).toEqual(['history', ['3', '2', '1']]);
    await fhir.delete({ resourceType: 'Patient', id: p.id! });
    expect(status(await fhir.read({ resourceType: 'Patient', id: p.id! }).catch((e: unknown) => e))).toBe(410);
  });

  it('conditional create answers the existing resource; a conditional update finds it by identifier', async () => {
    const billId = `kit-${randomUUID()}`;
    const ifNoneExist = { headers: { 'If-None-Exist': `identifier=${CLAIM_ID_SYSTEM}|${billId}` } };
    const first = await got<Claim>(fhir.create({ resourceType: 'Claim', body: fhirResource(claim('Patient/kit', billId)), options: ifNoneExist }));
    const again = await got<Claim>(fhir.create({ resourceType: 'Claim', body: fhirResource(claim('Patient/kit', billId)), options: ifNoneExist }));
    expect(again.id).toBe(first.id);
    const byIdentifier = await got<Claim>(fhir.update({
      resourceType: 'Claim',
      searchParams: { identifier: `${CLAIM_ID_SYSTEM}|${billId}` },
      body: { ...claim('Patient/kit', billId), status: 'cancelled' },
    }));
    expect([byIdentifier.id, byIdentifier.meta?.versionId, byIdentifier.status]).toEqual([first.id, '2', 'cancelled']);
  });

  it('searches (chained too) and follows next links until the last page, each resource once', async () => {
    const p = await got<Patient>(fhir.create({ resourceType: 'Patient', body: { ...patient('Pager'), identifier: [{ system: 'urn:mrn', value: 'kit-pager' }] } }));
    const created = new Set<string>();
    for (let i = 0; i < 23; i++) created.add((await got<Claim>(fhir.create({ resourceType: 'Claim', body: fhirResource(claim(`Patient/${p.id}`)) }))).id!);
    const seen: string[] = [];
    let page: FhirResource | undefined = await fhir.search({ resourceType: 'Claim', searchParams: { 'patient.identifier': 'urn:mrn|kit-pager', _count: 5 } });
    let pages = 0;
    while (page) {
      pages++;
      seen.push(...((page as unknown as Bundle).entry ?? []).map((e) => e.resource!.id!));
      page = await fhir.nextPage({ bundle: page as Parameters<Client['nextPage']>[0]['bundle'] });
    }
    expect(pages).toBe(5);
    expect(seen.toSorted()).toEqual([...created].toSorted());
  });

  it('a batch, and a 1,000-entry transaction with conditional entries and a conditional reference', async () => {
    const batch = await got<Bundle>(fhir.batch({
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { resource: patient('Batch'), request: { method: 'POST', url: 'Patient' } },
          { request: { method: 'GET', url: 'Patient/does-not-exist' } },
          { request: { method: 'GET', url: 'Patient?name=Batch' } },
        ],
      },
    }));
    expect(batch.entry?.map((e) => e.response?.status.slice(0, 3))).toEqual(['201', '404', '200']);
    expect((batch.entry?.[2]?.resource as Bundle).type).toBe('searchset');

    const mrn = `kit-${randomUUID()}`;
    await fhir.create({ resourceType: 'Patient', body: { ...patient('Big'), identifier: [{ system: 'urn:mrn', value: mrn }] } });
    const entry: Bundle['entry'] = Array.from({ length: 1000 }, (_, i) => {
      const billId = `${mrn}-${i}`;
      const resource = claim(`Patient?identifier=urn:mrn|${mrn}`, billId);
      return i % 2 === 0
        ? { fullUrl: `urn:uuid:${randomUUID()}`, resource, request: { method: 'POST', url: 'Claim', ifNoneExist: `identifier=${CLAIM_ID_SYSTEM}|${billId}` } }
        : { resource, request: { method: 'PUT', url: `Claim?identifier=${CLAIM_ID_SYSTEM}|${billId}` } };
    });
    const result = await got<Bundle>(fhir.transaction({ body: { resourceType: 'Bundle', type: 'transaction', entry } }));
    expect(result.type).toBe('transaction-response');
    expect(result.entry?.filter((e) => e.response?.status.startsWith('201') && e.response.etag === 'W/"1"')).toHaveLength(1000);
    const count = await got<Bundle>(fhir.search({ resourceType: 'Claim', searchParams: { 'patient.identifier': `urn:mrn|${mrn}`, _summary: 'count' } }));
    expect(count.total).toBe(1000);
  }, 120_000);
});
