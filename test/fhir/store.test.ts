import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { claim, patient } from '../support/fixtures.ts';

const LIFECYCLE_URL = 'https://fhir-billing.org/fhir/StructureDefinition/claim-lifecycle-id';
let t: TestApp;
let token: string;
beforeAll(async () => {
  t = await startTestApp();
  token = await t.token();
});
afterAll(() => t.close());

describe('outbox', () => {
  it('records every committed change, in order, and nothing for a refused one', async () => {
    const [{ seq: before }] = await t.db.query<{ seq: string }>('SELECT coalesce(max(seq), 0)::text AS seq FROM outbox');
    const p = await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).send(patient()).expect(201);
    await request(t.app).put(`/fhir/Patient/${p.body.id}`).auth(token, { type: 'bearer' }).send({ ...p.body, gender: 'female' }).expect(200);
    await request(t.app).put(`/fhir/Patient/${p.body.id}`).auth(token, { type: 'bearer' }).set('If-Match', 'W/"1"').send({ ...p.body, gender: 'male' }).expect(412);
    await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).send({ resourceType: 'Patient', gender: 'nonsense' }).expect(400);
    await request(t.app).delete(`/fhir/Patient/${p.body.id}`).auth(token, { type: 'bearer' }).expect(200);
    const rows = await t.db.query<{ resource_id: string; version_id: number; interaction: string; tenant_id: string }>(
      'SELECT tenant_id, resource_id, version_id, interaction FROM outbox WHERE seq > $1 ORDER BY seq',
      [before],
    );
    expect(rows).toEqual([
      { tenant_id: 'default', resource_id: p.body.id, version_id: 1, interaction: 'create' },
      { tenant_id: 'default', resource_id: p.body.id, version_id: 2, interaction: 'update' },
      { tenant_id: 'default', resource_id: p.body.id, version_id: 3, interaction: 'delete' },
    ]);
  });

  it('a failed transaction leaves no resource, history, index or outbox row', async () => {
    const counts = async (): Promise<string> =>
      JSON.stringify(
        await t.db.query(
          `SELECT (SELECT count(*) FROM resource)::int AS r, (SELECT count(*) FROM resource_history)::int AS h,
                  (SELECT count(*) FROM search_token)::int AS t, (SELECT count(*) FROM outbox)::int AS o`,
        ),
      );
    const before = await counts();
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { resource: patient('Rollback'), request: { method: 'POST', url: 'Patient' } },
        { resource: { resourceType: 'Claim', status: 'not-a-status' }, request: { method: 'POST', url: 'Claim' } },
      ],
    };
    expect((await request(t.app).post('/fhir').auth(token, { type: 'bearer' }).send(bundle)).status).toBeGreaterThanOrEqual(400);
    expect(await counts()).toBe(before);
  });
});

describe('concurrent updates', () => {
  it('with the same If-Match, exactly one wins and the rest get 412', async () => {
    const p = await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).send(patient()).expect(201);
    const attempts = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        request(t.app).put(`/fhir/Patient/${p.body.id}`).auth(token, { type: 'bearer' }).set('If-Match', 'W/"1"').send({ ...p.body, birthDate: `19${10 + i}-01-01` }),
      ),
    );
    const statuses = attempts.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 412, 412, 412, 412, 412, 412, 412]);
    const history = await request(t.app).get(`/fhir/Patient/${p.body.id}/_history`).auth(token, { type: 'bearer' });
    expect(history.body.total).toBe(2);
  });

  it('without If-Match, every update lands as its own version', async () => {
    const p = await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).send(patient()).expect(201);
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        request(t.app).put(`/fhir/Patient/${p.body.id}`).auth(token, { type: 'bearer' }).send({ ...p.body, birthDate: `19${10 + i}-01-01` }).expect(200),
      ),
    );
    const current = await request(t.app).get(`/fhir/Patient/${p.body.id}`).auth(token, { type: 'bearer' });
    expect(current.body.meta.versionId).toBe('11');
    const history = await request(t.app).get(`/fhir/Patient/${p.body.id}/_history?_count=100`).auth(token, { type: 'bearer' });
    expect(history.body.entry.map((e: any) => Number(e.resource.meta.versionId))).toEqual([11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
  });
});

describe('our own definitions', () => {
  it('searches Claims by claim lifecycle', async () => {
    const p = await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).send(patient()).expect(201);
    const withLifecycle = { ...claim(`Patient/${p.body.id}`), extension: [{ url: LIFECYCLE_URL, valueString: 'LC-77' }] };
    const a = await request(t.app).post('/fhir/Claim').auth(token, { type: 'bearer' }).send(withLifecycle).expect(201);
    const b = await request(t.app).post('/fhir/Claim').auth(token, { type: 'bearer' }).send(withLifecycle).expect(201);
    await request(t.app).post('/fhir/Claim').auth(token, { type: 'bearer' }).send(claim(`Patient/${p.body.id}`)).expect(201);
    const res = await request(t.app).get('/fhir/Claim?lifecycle=LC-77').auth(token, { type: 'bearer' });
    expect(res.body.entry.map((e: any) => e.resource.id).sort()).toEqual([a.body.id, b.body.id].sort());
  });

  it('stores, validates and searches PatientCredit', async () => {
    const p = await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).send(patient()).expect(201);
    const credit = {
      resourceType: 'PatientCredit',
      status: 'unallocated',
      patient: { reference: `Patient/${p.body.id}` },
      amount: { value: 20.5, currency: 'USD' },
      balance: { value: 20.5, currency: 'USD' },
      created: '2024-05-02T10:00:00Z',
    };
    const created = await request(t.app).post('/fhir/PatientCredit').auth(token, { type: 'bearer' }).send(credit);
    expect(created.status).toBe(201);
    const found = await request(t.app).get(`/fhir/PatientCredit?patient=Patient/${p.body.id}&status=unallocated`).auth(token, { type: 'bearer' });
    expect(found.body.entry.map((e: any) => e.resource.id)).toEqual([created.body.id]);
    expect((await request(t.app).get(`/fhir/PatientCredit?patient=Patient/${p.body.id}&status=allocated`).auth(token, { type: 'bearer' })).body.entry).toEqual([]);

    const bad = await request(t.app).post('/fhir/PatientCredit').auth(token, { type: 'bearer' }).send({ ...credit, status: 'spent' });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('PatientCredit.status');
    const missing = await request(t.app).post('/fhir/PatientCredit').auth(token, { type: 'bearer' }).send({ ...credit, patient: undefined });
    expect(missing.status).toBe(400);
    expect(JSON.stringify(missing.body)).toContain('PatientCredit.patient');
  });
});
