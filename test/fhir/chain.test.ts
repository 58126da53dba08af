import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { CLAIM_ID_SYSTEM, claim, patient } from '../support/fixtures.ts';

// Chained parameters and _has (reverse chaining), several links deep, and their scopes.

let t: TestApp;
let token: string;
const get = (url: string, as = token) => request(t.app).get(url).auth(as, { type: 'bearer' });
const post = async (url: string, body: object): Promise<string> =>
  (await request(t.app).post(url).auth(token, { type: 'bearer' }).set('Content-Type', 'application/fhir+json').send(body).expect(201)).body.id;
const ids = (res: request.Response): string[] => {
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.entry.filter((e: any) => e.search.mode === 'match').map((e: any) => e.resource.id).sort();
};
const org: Record<string, string> = {};
const pat: Record<string, string> = {};
const cl: Record<string, string> = {};
let response: string;

beforeAll(async () => {
  t = await startTestApp();
  token = await t.token();
  org.acme = await post('/fhir/Organization', { resourceType: 'Organization', name: 'Acme Clinic', identifier: [{ system: 'urn:org', value: 'acme' }] });
  org.other = await post('/fhir/Organization', { resourceType: 'Organization', name: 'Other Clinic', identifier: [{ system: 'urn:org', value: 'other' }] });
  pat.ann = await post('/fhir/Patient', { ...patient('Chainly'), identifier: [{ system: 'urn:mrn', value: 'ann' }], managingOrganization: { reference: `Organization/${org.acme}` } });
  pat.bob = await post('/fhir/Patient', { ...patient('Chainless'), identifier: [{ system: 'urn:mrn', value: 'bob' }], managingOrganization: { reference: `Organization/${org.other}` } });
  cl.a1 = await post('/fhir/Claim', claim(`Patient/${pat.ann}`, 'chain-a1', '2024-01-10'));
  cl.a2 = await post('/fhir/Claim', claim(`Patient/${pat.ann}`, 'chain-a2', '2024-05-10'));
  cl.b1 = await post('/fhir/Claim', claim(`Patient/${pat.bob}`, 'chain-b1', '2024-05-10'));
  response = await post('/fhir/ClaimResponse', {
    resourceType: 'ClaimResponse',
    status: 'active',
    type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
    use: 'claim',
    patient: { reference: `Patient/${pat.ann}` },
    created: '2024-01-11',
    insurer: { display: 'Payer' },
    request: { reference: `Claim/${cl.a1}` },
    outcome: 'complete',
  });
});
afterAll(() => t.close());

describe('chained parameters', () => {
  it('one link: Claim?patient.identifier and ClaimResponse?request.identifier', async () => {
    expect(ids(await get('/fhir/Claim?patient.identifier=urn:mrn|ann'))).toEqual([cl.a1, cl.a2].sort());
    expect(ids(await get('/fhir/Claim?patient:Patient.identifier=urn:mrn|bob'))).toEqual([cl.b1]);
    expect(ids(await get(`/fhir/ClaimResponse?request.identifier=${CLAIM_ID_SYSTEM}|chain-a1`))).toEqual([response]);
    expect(ids(await get('/fhir/Claim?patient.identifier=urn:mrn|nobody'))).toEqual([]);
  });

  it('with modifiers and prefixes on the last link, and ANDed with other parameters', async () => {
    expect(ids(await get('/fhir/Claim?patient.name:exact=Chainly'))).toEqual([cl.a1, cl.a2].sort());
    expect(ids(await get('/fhir/Claim?patient.name=chain'))).toEqual([cl.a1, cl.a2, cl.b1].sort());
    expect(ids(await get('/fhir/Claim?patient.identifier=urn:mrn|ann&created=ge2024-03-01'))).toEqual([cl.a2]);
    expect(ids(await get('/fhir/ClaimResponse?request.created=lt2024-02-01'))).toEqual([response]);
  });

  it('several links: Claim?patient.organization.identifier', async () => {
    expect(ids(await get('/fhir/Claim?patient.organization.identifier=urn:org|acme'))).toEqual([cl.a1, cl.a2].sort());
    expect(ids(await get('/fhir/Claim?patient.organization.name=Other'))).toEqual([cl.b1]);
    expect(ids(await get('/fhir/ClaimResponse?request.patient.organization.identifier=urn:org|acme'))).toEqual([response]);
  });

  it('refuses what it cannot answer with a 400', async () => {
    for (const q of ['Claim?status.code=x', 'Claim?patient.nonsense=x', 'Claim?patient:Organization.name=x', 'Claim?patient.organization.partof.partof.partof.name=x']) {
      const res = await get(`/fhir/${q}`);
      expect(res.status, q).toBe(400);
      expect(res.body.resourceType).toBe('OperationOutcome');
    }
  });
});

describe('_has', () => {
  it('finds the resources that matching resources refer to', async () => {
    expect(ids(await get(`/fhir/Patient?_has:Claim:patient:identifier=${CLAIM_ID_SYSTEM}|chain-b1`))).toEqual([pat.bob]);
    expect(ids(await get('/fhir/Patient?_has:Claim:patient:created=2024-05-10&identifier=urn:mrn|'))).toEqual([pat.ann, pat.bob].sort());
    expect(ids(await get('/fhir/Claim?_has:ClaimResponse:request:outcome=complete'))).toEqual([cl.a1]);
    expect(ids(await get(`/fhir/Organization?_has:Patient:organization:_has:Claim:patient:identifier=${CLAIM_ID_SYSTEM}|chain-a2`))).toEqual([org.acme]);
    expect(ids(await get('/fhir/Patient?_has:Claim:patient:identifier=nothing'))).toEqual([]);
  });

  it('refuses a malformed or impossible _has', async () => {
    for (const q of ['Patient?_has:Claim:patient=x', 'Patient?_has:Nope:patient:identifier=x', 'Patient?_has:Claim:status:identifier=x', 'Organization?_has:Claim:patient:identifier=x']) {
      expect((await get(`/fhir/${q}`)).status, q).toBe(400);
    }
  });
});

describe('scopes', () => {
  it('a chain or _has needs search scope on every type it reads', async () => {
    const claimsOnly = await t.token('system/Claim.s');
    expect((await get('/fhir/Claim?identifier=chain-a1', claimsOnly)).status).toBe(200);
    expect((await get('/fhir/Claim?patient.identifier=urn:mrn|ann', claimsOnly)).status).toBe(403);
    expect((await get('/fhir/Claim?_has:ClaimResponse:request:outcome=complete', claimsOnly)).status).toBe(403);
  });
});
