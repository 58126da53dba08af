import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScopeSet, parseScopes } from '../../src/auth/index.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { claim, patient } from '../support/fixtures.ts';

let t: TestApp;
let patientId: string;
let claimId: string;
beforeAll(async () => {
  t = await startTestApp();
  const all = await t.token();
  patientId = (await request(t.app).post('/fhir/Patient').auth(all, { type: 'bearer' }).send(patient('Scoped')).expect(201)).body.id;
  claimId = (await request(t.app).post('/fhir/Claim').auth(all, { type: 'bearer' }).send(claim(`Patient/${patientId}`, 'scoped-bill')).expect(201)).body.id;
});
afterAll(() => t.close());

const as = async (scopes: string) => {
  const token = await t.token(scopes);
  return {
    get: (path: string) => request(t.app).get(path).auth(token, { type: 'bearer' }),
    post: (path: string) => request(t.app).post(path).auth(token, { type: 'bearer' }),
    put: (path: string) => request(t.app).put(path).auth(token, { type: 'bearer' }),
    patch: (path: string) => request(t.app).patch(path).auth(token, { type: 'bearer' }),
    delete: (path: string) => request(t.app).delete(path).auth(token, { type: 'bearer' }),
  };
};

function expect403(res: request.Response, scope: string): void {
  expect(res.status).toBe(403);
  expect(res.body.resourceType).toBe('OperationOutcome');
  expect(res.body.issue[0].code).toBe('forbidden');
  expect(res.body.issue[0].details.text).toContain(scope);
}

describe('SMART scope strings', () => {
  it('parses v2 cruds and v1 read/write/*, and refuses what we do not grant', () => {
    expect('scopes' in parseScopes('system/Claim.rs system/*.cruds system/Patient.read system/*.write system/*.* admin webhook')).toBe(true);
    for (const bad of ['system/Claim.sr', 'system/Claim.', 'system/Claim.x', 'patient/*.read', 'user/Claim.rs', 'system/Medication.rs', 'system/Claim.rs?status=active', 'openid', 'system/Claim.rss']) {
      expect(parseScopes(bad), bad).toEqual({ invalid: [bad] });
    }
  });

  it('read = r+s, write = c+u+d; a wildcard covers every type; covers() compares grants', () => {
    const v1 = new ScopeSet(['system/*.read', 'system/Claim.write']);
    expect(['r', 's'].every((i) => v1.allows('Patient', i as 'r'))).toBe(true);
    expect(v1.allows('Patient', 'c')).toBe(false);
    expect(['c', 'u', 'd'].every((i) => v1.allows('Claim', i as 'c'))).toBe(true);
    expect(v1.covers('system/Claim.cruds')).toBe(true);
    expect(v1.covers('system/Patient.rs')).toBe(true);
    expect(v1.covers('system/*.rs')).toBe(true);
    expect(v1.covers('system/*.c')).toBe(false);
    expect(v1.covers('system/Patient.u')).toBe(false);
    expect(v1.covers('admin')).toBe(false);
    expect(new ScopeSet(['system/Claim.c', 'system/Patient.c']).covers('system/*.c')).toBe(false);
  });
});

describe('each interaction needs its scope (403 OperationOutcome otherwise)', () => {
  it('read and vread and instance history need r; search and type history need s', async () => {
    const reader = await as('system/Patient.r');
    expect((await reader.get(`/fhir/Patient/${patientId}`)).status).toBe(200);
    expect((await reader.get(`/fhir/Patient/${patientId}/_history/1`)).status).toBe(200);
    expect((await reader.get(`/fhir/Patient/${patientId}/_history`)).status).toBe(200);
    expect403(await reader.get('/fhir/Patient?family=Scoped'), 'system/Patient.s');
    expect403(await reader.post('/fhir/Patient/_search').type('form').send({ family: 'Scoped' }), 'system/Patient.s');
    expect403(await reader.get('/fhir/Patient/_history'), 'system/Patient.s');
    expect403(await reader.get(`/fhir/Claim/${claimId}`), 'system/Claim.r');

    const searcher = await as('system/Patient.s');
    expect((await searcher.get('/fhir/Patient?family=Scoped')).body.entry).toHaveLength(1);
    expect403(await searcher.get(`/fhir/Patient/${patientId}`), 'system/Patient.r');
  });

  it('create needs c, update and patch u (u+c when an update creates), delete d', async () => {
    const creator = await as('system/Patient.c');
    expect((await creator.post('/fhir/Patient').send(patient())).status).toBe(201);
    expect403(await creator.put(`/fhir/Patient/${patientId}`).send({ ...patient(), id: patientId }), 'system/Patient.u');

    const updater = await as('system/Patient.ru');
    const current = (await updater.get(`/fhir/Patient/${patientId}`)).body;
    expect((await updater.put(`/fhir/Patient/${patientId}`).send({ ...current, gender: 'female' })).status).toBe(200);
    expect((await updater.patch(`/fhir/Patient/${patientId}`).set('Content-Type', 'application/json-patch+json').send([{ op: 'replace', path: '/gender', value: 'other' }])).status).toBe(200);
    expect403(await updater.put('/fhir/Patient/brand-new-id').send({ ...patient(), id: 'brand-new-id' }), 'system/Patient.c');
    expect403(await updater.post('/fhir/Patient').send(patient()), 'system/Patient.c');
    expect403(await updater.delete(`/fhir/Patient/${patientId}`), 'system/Patient.d');

    const v1 = await as('system/Patient.write');
    expect((await v1.put('/fhir/Patient/brand-new-id').send({ ...patient(), id: 'brand-new-id' })).status).toBe(201);
    expect((await v1.delete('/fhir/Patient/brand-new-id')).status).toBe(200);
    expect403(await v1.get(`/fhir/Patient/${patientId}`), 'system/Patient.r');
  });

  it('conditional create needs s as well as c (it searches first)', async () => {
    const body = claim(`Patient/${patientId}`, 'scoped-bill');
    const onlyCreate = await as('system/Claim.c');
    expect403(await onlyCreate.post('/fhir/Claim').set('If-None-Exist', 'identifier=scoped-bill').send(body), 'system/Claim.s');
    const createSearch = await as('system/Claim.cs');
    const res = await createSearch.post('/fhir/Claim').set('If-None-Exist', 'identifier=scoped-bill').send(body);
    expect(res.status).toBe(200); // found the existing one, which only a reader may see
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(JSON.stringify(res.body)).not.toContain(claimId);
    const reader = await as('system/Claim.crs');
    const read = await reader.post('/fhir/Claim').set('If-None-Exist', 'identifier=scoped-bill').send(body);
    expect(read.status).toBe(200);
    expect(read.body.id).toBe(claimId);
  });

  it('conditional update and delete need s as well', async () => {
    const updater = await as('system/Claim.u');
    expect403(await updater.put('/fhir/Claim?identifier=scoped-bill').send(claim(`Patient/${patientId}`, 'scoped-bill')), 'system/Claim.s');
    const deleter = await as('system/Claim.d');
    expect403(await deleter.delete('/fhir/Claim?identifier=scoped-bill'), 'system/Claim.s');
  });

  it('_include needs r on the included type; _revinclude needs s on it', async () => {
    const claimsOnly = await as('system/Claim.rs');
    expect((await claimsOnly.get('/fhir/Claim?identifier=scoped-bill')).status).toBe(200);
    expect403(await claimsOnly.get('/fhir/Claim?identifier=scoped-bill&_include=Claim:patient'), 'system/Patient.r');
    const both = await as('system/Claim.rs system/Patient.r');
    const included = await both.get('/fhir/Claim?identifier=scoped-bill&_include=Claim:patient');
    expect(included.status).toBe(200);
    expect(included.body.entry.map((e: any) => e.resource.resourceType).sort()).toEqual(['Claim', 'Patient']);

    const patientsOnly = await as('system/Patient.rs');
    expect403(await patientsOnly.get(`/fhir/Patient?_id=${patientId}&_revinclude=Claim:patient`), 'system/Claim.s');
    const withClaims = await as('system/Patient.rs system/Claim.s');
    expect((await withClaims.get(`/fhir/Patient?_id=${patientId}&_revinclude=Claim:patient`)).body.entry).toHaveLength(2);
  });

  it('batch: each entry is checked on its own', async () => {
    const reader = await as('system/Patient.rs');
    const res = await reader.post('/fhir').send({
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        { request: { method: 'GET', url: `Patient/${patientId}` } },
        { request: { method: 'GET', url: `Claim/${claimId}` } },
        { resource: patient('BatchRefused'), request: { method: 'POST', url: 'Patient' } },
      ],
    });
    expect(res.status).toBe(200);
    expect(res.body.entry.map((e: any) => e.response.status)).toEqual(['200', '403', '403']);
  });

  it('transaction: one refused entry refuses the whole and writes nothing', async () => {
    const creator = await as('system/Patient.cs');
    const res = await creator.post('/fhir').send({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { fullUrl: 'urn:uuid:0b0e6b0a-1d1e-4b7a-9f7e-111111111111', resource: patient('TxnRefused'), request: { method: 'POST', url: 'Patient' } },
        { resource: claim('urn:uuid:0b0e6b0a-1d1e-4b7a-9f7e-111111111111', 'txn-refused'), request: { method: 'POST', url: 'Claim' } },
      ],
    });
    expect403(res, 'system/Claim.c');
    expect((await creator.get('/fhir/Patient?family:exact=TxnRefused')).body.entry).toEqual([]);
  });

  it('a token with no FHIR scope at all (admin only) can do nothing under /fhir but read metadata', async () => {
    const admin = await as('admin');
    expect403(await admin.get('/fhir/Patient'), 'system/Patient.s');
    expect((await admin.get('/fhir/metadata')).status).toBe(200);
  });
});
