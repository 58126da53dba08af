import { randomUUID } from 'node:crypto';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import smart from 'fhirclient';
import { getSecurityExtensions } from 'fhirclient/lib/smart.js';
import type { Bundle, Claim, Patient } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen } from '../support/listening.ts';
import type { ListeningApp } from '../support/listening.ts';
import { CLAIM_ID_SYSTEM, claim, patient } from '../support/fixtures.ts';

// SMART's fhirclient (its Node entry) run as a backend service would: the token URL from the
// library's own discovery, a client-credentials token, and a Client made from that token
// response. Every call below is the library's ordinary API, unmodified.

let server: ListeningApp;
// The resources are @medplum/fhirtypes; fhirclient has its own stricter Meta type, hence `as never` on writes.
let fhir: ReturnType<ReturnType<typeof smart>['client']>;

beforeAll(async () => {
  server = await listen();
  const { tokenUri } = await getSecurityExtensions(server.fhirBase);
  expect(tokenUri).toBe(`${server.origin}/oauth2/token`);
  const access_token = await server.clientCredentialsToken(tokenUri);
  // The Node adapter wants the request and response of the app's own HTTP exchange (for its
  // launch redirects and session storage); a client made from a token response uses neither.
  const request = new IncomingMessage(new Socket());
  fhir = smart(request, new ServerResponse(request)).client({ serverUrl: server.fhirBase, tokenResponse: { access_token } });
});
afterAll(() => server.close());

const status = (error: unknown): number | undefined => (error as { status?: number }).status;
const json = { 'content-type': 'application/fhir+json' };

describe('SMART fhirclient', () => {
  it('reads the FHIR version from the capabilities', async () => {
    expect(await fhir.getFhirVersion()).toBe('4.0.1');
    expect(await fhir.getFhirRelease()).toBe(4);
  });

  it('creates, reads, updates, patches, reads history and deletes', async () => {
    const p = await fhir.create<Patient>(patient('Smart') as never);
    expect(p.meta?.versionId).toBe('1');
    expect((await fhir.request<Patient>(`Patient/${p.id}`)).name?.[0]?.family).toBe('Smart');
    const updated = await fhir.update<Patient>({ ...p, gender: 'female' } as never);
    expect(updated.meta?.versionId).toBe('2');
    const patched = await fhir.patch<Patient>(`Patient/${p.id}`, [{ op: 'replace', path: '/gender', value: 'male' }]);
    expect([patched.meta?.versionId, patched.gender]).toEqual(['3', 'male']);
    const history = await fhir.request<Bundle>(`Patient/${p.id}/_history`);
    expect(history.entry?.map((e) => e.resource?.meta?.versionId)).toEqual(['3', '2', '1']);
    await fhir.delete(`Patient/${p.id}`);
    expect(status(await fhir.request(`Patient/${p.id}`).catch((e: unknown) => e))).toBe(410);
  });

  it('conditional create answers the existing resource', async () => {
    const billId = `smart-${randomUUID()}`;
    const headers = { 'If-None-Exist': `identifier=${CLAIM_ID_SYSTEM}|${billId}` };
    const first = await fhir.create<Claim>(claim('Patient/smart', billId) as never, { headers });
    const again = await fhir.create<Claim>(claim('Patient/smart', billId) as never, { headers });
    expect(again.id).toBe(first.id);
  });

  it('follows every next link of a chained search (pageLimit 0), each resource once', async () => {
    const p = await fhir.create<Patient>({ ...patient('Pages'), identifier: [{ system: 'urn:mrn', value: 'smart-pages' }] } as never);
    const created: string[] = [];
    for (let i = 0; i < 17; i++) created.push((await fhir.create<Claim>(claim(`Patient/${p.id}`) as never)).id!);
    const all = await fhir.request<Claim[]>('Claim?patient.identifier=urn:mrn|smart-pages&_count=4', { pageLimit: 0, flat: true });
    expect(all.map((c) => c.id).toSorted()).toEqual(created.toSorted());
    const pages: Bundle[] = [];
    for await (const page of fhir.pages('Claim?patient.identifier=urn:mrn|smart-pages&_count=4')) pages.push(page as Bundle);
    expect(pages.map((b) => b.entry?.length)).toEqual([4, 4, 4, 4, 1]);
  });

  it('a batch, and a 1,000-entry transaction with conditional entries', async () => {
    const batch = await fhir.request<Bundle>({
      url: '',
      method: 'POST',
      headers: json,
      body: JSON.stringify({
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { resource: patient('SmartBatch'), request: { method: 'POST', url: 'Patient' } },
          { request: { method: 'GET', url: 'Patient?name=SmartBatch' } },
          { request: { method: 'DELETE', url: 'Patient/never-was' } },
        ],
      }),
    });
    expect(batch.entry?.map((e) => e.response?.status.slice(0, 3))).toEqual(['201', '200', '404']); // a resource that never existed: 404, as a plain DELETE answers

    const mrn = `smart-${randomUUID()}`;
    const entry = [
      { fullUrl: 'urn:uuid:7b0c1c9e-1b4e-4a59-9d3f-3c1c57a1f0aa', resource: { ...patient('SmartBig'), identifier: [{ system: 'urn:mrn', value: mrn }] }, request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=urn:mrn|${mrn}` } },
      ...Array.from({ length: 999 }, (_, i) => ({
        resource: claim('urn:uuid:7b0c1c9e-1b4e-4a59-9d3f-3c1c57a1f0aa', `${mrn}-${i}`),
        request: { method: 'PUT', url: `Claim?identifier=${CLAIM_ID_SYSTEM}|${mrn}-${i}` },
      })),
    ];
    const result = await fhir.request<Bundle>({ url: '', method: 'POST', headers: json, body: JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry }) });
    expect(result.type).toBe('transaction-response');
    expect(result.entry?.filter((e) => e.response?.status.startsWith('201'))).toHaveLength(1000);
    const claims = await fhir.request<Bundle>(`Claim?patient.identifier=urn:mrn|${mrn}&_summary=count`);
    expect(claims.total).toBe(999);
  }, 120_000);
});
