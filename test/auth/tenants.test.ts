import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { CLAIM_ID_SYSTEM, claim, patient } from '../support/fixtures.ts';

/**
 * Two tenants on one server: `default` (A) and `other` (B). Each has a Patient named Isolde and a
 * Claim with the same claim-id, so every search could match both; A has one more Claim of its own.
 */
let t: TestApp;
let a: ReturnType<typeof client>;
let b: ReturnType<typeof client>;
const A: Record<string, string> = {};
const B: Record<string, string> = {};

function client(token: string) {
  return {
    get: (path: string) => request(t.app).get(path).auth(token, { type: 'bearer' }),
    post: (path: string) => request(t.app).post(path).auth(token, { type: 'bearer' }),
    put: (path: string) => request(t.app).put(path).auth(token, { type: 'bearer' }),
    patch: (path: string) => request(t.app).patch(path).auth(token, { type: 'bearer' }).set('Content-Type', 'application/json-patch+json'),
    delete: (path: string) => request(t.app).delete(path).auth(token, { type: 'bearer' }),
  };
}

beforeAll(async () => {
  t = await startTestApp();
  a = client(await t.token('system/*.cruds', 'default'));
  b = client(await t.token('system/*.cruds', 'other'));
  for (const [who, ids] of [[a, A], [b, B]] as const) {
    ids.patient = (await who.post('/fhir/Patient').send(patient('Isolde')).expect(201)).body.id;
    ids.claim = (await who.post('/fhir/Claim').send(claim(`Patient/${ids.patient}`, 'shared-bill')).expect(201)).body.id;
  }
  A.onlyClaim = (await a.post('/fhir/Claim').send(claim(`Patient/${A.patient}`, 'only-a-bill')).expect(201)).body.id;
  const current = (await a.get(`/fhir/Patient/${A.patient}`)).body;
  await a.put(`/fhir/Patient/${A.patient}`).send({ ...current, gender: 'female' }).expect(200);
});
afterAll(() => t.close());

const ids = (res: request.Response, mode = 'match'): string[] =>
  res.body.entry.filter((e: any) => e.search?.mode === mode).map((e: any) => `${e.resource.resourceType}/${e.resource.id}`).sort();

describe('the same searches as two tenants: neither sees the other', () => {
  const searches = [
    'Patient?name=Isolde',
    `Claim?identifier=${CLAIM_ID_SYSTEM}|shared-bill`,
    'Claim?identifier=only-a-bill',
    'Claim?status=active&_total=accurate',
    'Claim?_lastUpdated=gt2000-01-01',
    'Claim?identifier=shared-bill&_include=Claim:patient',
    'Patient?name=Isolde&_revinclude=Claim:patient',
  ];
  it.each(searches)('%s', async (search) => {
    const [resA, resB] = await Promise.all([a.get(`/fhir/${search}`), b.get(`/fhir/${search}`)]);
    expect(resA.status).toBe(200);
    expect(resB.status).toBe(200);
    const all = (res: request.Response) => res.body.entry.map((e: any) => `${e.resource.resourceType}/${e.resource.id}`);
    const ownA = new Set(Object.values(A).map(String));
    const ownB = new Set(Object.values(B).map(String));
    for (const ref of all(resA)) expect(ownA.has(ref.split('/')[1]), `A saw ${ref}`).toBe(true);
    for (const ref of all(resB)) expect(ownB.has(ref.split('/')[1]), `B saw ${ref}`).toBe(true);
    if (resA.body.total !== undefined) expect(resA.body.total).toBe(2);
    if (resB.body.total !== undefined) expect(resB.body.total).toBe(1);
  });

  it('each finds its own, and only its own', async () => {
    expect(ids(await a.get('/fhir/Patient?name=Isolde'))).toEqual([`Patient/${A.patient}`]);
    expect(ids(await b.get('/fhir/Patient?name=Isolde'))).toEqual([`Patient/${B.patient}`]);
    expect(ids(await a.get('/fhir/Claim?identifier=shared-bill'))).toEqual([`Claim/${A.claim}`]);
    expect(ids(await b.get('/fhir/Claim?identifier=shared-bill'))).toEqual([`Claim/${B.claim}`]);
    expect(ids(await b.get('/fhir/Claim?identifier=only-a-bill'))).toEqual([]);
    expect(ids(await b.get(`/fhir/Claim?_id=${A.claim}`))).toEqual([]);
    expect(ids(await b.get(`/fhir/Claim?patient=Patient/${A.patient}`))).toEqual([]);
  });

  it('type history shows only the tenant\'s own versions', async () => {
    const histA = await a.get('/fhir/Patient/_history');
    const histB = await b.get('/fhir/Patient/_history');
    expect(histA.body.total).toBe(2); // create + update
    expect(histB.body.total).toBe(1);
    expect(histB.body.entry.every((e: any) => e.resource.id === B.patient)).toBe(true);
  });
});

describe("another tenant's resource is 404, never 403", () => {
  it('read, vread, instance history', async () => {
    for (const path of [`/fhir/Patient/${A.patient}`, `/fhir/Patient/${A.patient}/_history/1`, `/fhir/Patient/${A.patient}/_history/2`, `/fhir/Patient/${A.patient}/_history`, `/fhir/Claim/${A.claim}`]) {
      const res = await b.get(path);
      expect(res.status, path).toBe(404);
      expect(res.body.resourceType).toBe('OperationOutcome');
    }
    expect((await a.get(`/fhir/Patient/${A.patient}/_history/2`)).status).toBe(200);
  });

  it('patch and delete do not reach it; a PUT to its id creates B\'s own resource and leaves A\'s alone', async () => {
    expect((await b.patch(`/fhir/Patient/${A.patient}`).send([{ op: 'replace', path: '/gender', value: 'male' }])).status).toBe(404);
    expect((await b.delete(`/fhir/Patient/${A.patient}`)).status).toBe(404);
    const put = await b.put(`/fhir/Patient/${A.patient}`).send({ ...patient('Intruder'), id: A.patient });
    expect(put.status).toBe(201);
    expect(put.body.meta.versionId).toBe('1');
    const still = await a.get(`/fhir/Patient/${A.patient}`);
    expect(still.body.meta.versionId).toBe('2');
    expect(still.body.name[0].family).toBe('Isolde');
    await b.delete(`/fhir/Patient/${A.patient}`).expect(200);
  });

  it('_include never follows a reference into another tenant', async () => {
    // B writes a Claim pointing at A's patient id: the reference resolves in B's tenant only.
    const crossing = await b.post('/fhir/Claim').send(claim(`Patient/${A.patient}`, 'crossing-bill')).expect(201);
    const res = await b.get('/fhir/Claim?identifier=crossing-bill&_include=Claim:patient');
    expect(ids(res)).toEqual([`Claim/${crossing.body.id}`]);
    expect(ids(res, 'include')).toEqual([]);
    const revA = await a.get(`/fhir/Patient?_id=${A.patient}&_revinclude=Claim:patient`);
    expect(ids(revA, 'include')).not.toContain(`Claim/${crossing.body.id}`);
  });

  it('batch and transaction entries are confined too', async () => {
    const batch = await b.post('/fhir').send({
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        { request: { method: 'GET', url: `Claim/${A.onlyClaim}` } },
        { request: { method: 'GET', url: `Patient/${B.patient}` } },
        { request: { method: 'GET', url: 'Claim?identifier=only-a-bill' } },
      ],
    });
    expect(batch.body.entry.map((e: any) => e.response.status)).toEqual(['404', '200', '200']);
    expect(batch.body.entry[2].resource.entry).toEqual([]);

    const txn = await b.post('/fhir').send({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [{ request: { method: 'DELETE', url: `Claim/${A.claim}` } }],
    });
    expect(txn.status).toBe(404);
    expect((await a.get(`/fhir/Claim/${A.claim}`)).status).toBe(200);
  });

  it('conditional create, update and delete match only within the tenant', async () => {
    // A has a Claim only-a-bill; B's conditional create with that criterion creates B's own.
    const created = await b.post('/fhir/Claim').set('If-None-Exist', 'identifier=only-a-bill').send(claim(`Patient/${B.patient}`, 'only-a-bill'));
    expect(created.status).toBe(201);
    expect(created.body.id).not.toBe(A.onlyClaim);
    // In a transaction as well.
    const txn = await b.post('/fhir').send({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [{ resource: claim(`Patient/${B.patient}`, 'shared-bill'), request: { method: 'POST', url: 'Claim', ifNoneExist: 'identifier=shared-bill' } }],
    });
    expect(txn.status).toBe(200);
    expect(txn.body.entry[0].response.location).toContain(B.claim); // found B's own, not A's
    // Conditional delete in B never touches A's.
    await b.delete('/fhir/Claim?identifier=only-a-bill').expect(200);
    expect((await a.get(`/fhir/Claim/${A.onlyClaim}`)).status).toBe(200);
    // Conditional update in B with A's criterion finds nothing of A's.
    const updated = await b.put('/fhir/Claim?identifier=only-a-bill').send(claim(`Patient/${B.patient}`, 'only-a-bill'));
    expect(updated.status).toBe(201);
    expect((await a.get(`/fhir/Claim/${A.onlyClaim}`)).body.meta.versionId).toBe('1');
  });

  it('a client of tenant B gets tokens for B from /api/token', async () => {
    const admin = await t.token('admin');
    const created = await request(t.app).post('/admin/clients').auth(admin, { type: 'bearer' }).send({ tenant: 'other', name: 'B billing' });
    expect(created.status).toBe(201);
    expect(created.body.tenant).toBe('other');
    const token = (await request(t.app).post('/api/token').send({ clientId: created.body.clientId, clientSecret: created.body.clientSecret })).body.accessToken;
    const res = await request(t.app).get('/fhir/Patient?name=Isolde').auth(token, { type: 'bearer' });
    expect(ids(res)).toEqual([`Patient/${B.patient}`]);
  });
});
