import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { claim, patient } from '../support/fixtures.ts';

let t: TestApp;
let token: string;
beforeAll(async () => {
  t = await startTestApp();
  token = await t.token();
});
afterAll(() => t.close());

describe('transaction', () => {
  it('creates all entries and rewrites urn:uuid references', async () => {
    const patientUrn = 'urn:uuid:8f4e3c1a-1111-4a5b-9c1d-000000000001';
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { fullUrl: patientUrn, resource: patient('Txn'), request: { method: 'POST', url: 'Patient' } },
        { resource: claim(patientUrn, 'txn-bill-1'), request: { method: 'POST', url: 'Claim' } },
      ],
    };
    const res = await request(t.app).post('/fhir').auth(token, { type: 'bearer' }).set('Content-Type', 'application/fhir+json').send(bundle);
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('transaction-response');
    expect(res.body.entry.map((e: any) => e.response.status)).toEqual(['201', '201']);
    const [patientLocation] = res.body.entry.map((e: any) => e.response.location);
    const patientId = /Patient\/([^/]+)/.exec(patientLocation)![1];
    const claims = await request(t.app).get('/fhir/Claim?identifier=txn-bill-1').auth(token, { type: 'bearer' });
    expect(claims.body.entry[0].resource.patient.reference).toBe(`Patient/${patientId}`);
  });

  it('is all-or-nothing: one invalid entry writes nothing', async () => {
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { resource: patient('Atomic'), request: { method: 'POST', url: 'Patient' } },
        { resource: { resourceType: 'Patient', birthDate: 'not-a-date' }, request: { method: 'POST', url: 'Patient' } },
      ],
    };
    const res = await request(t.app).post('/fhir').auth(token, { type: 'bearer' }).send(bundle);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    const found = await request(t.app).get('/fhir/Patient?family:exact=Atomic').auth(token, { type: 'bearer' });
    expect(found.body.entry).toEqual([]);
  });
});

describe('batch', () => {
  it('runs entries independently and reports each', async () => {
    const created = await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).send(patient('Batch')).expect(201);
    const bundle = {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        { request: { method: 'GET', url: `Patient/${created.body.id}` } },
        { request: { method: 'GET', url: 'Patient/missing-one' } },
        { resource: patient('Batch2'), request: { method: 'POST', url: 'Patient' } },
      ],
    };
    const res = await request(t.app).post('/fhir').auth(token, { type: 'bearer' }).send(bundle);
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('batch-response');
    expect(res.body.entry.map((e: any) => e.response.status)).toEqual(['200', '404', '201']);
  });

  it('refuses a body that is not a Bundle', async () => {
    const res = await request(t.app).post('/fhir').auth(token, { type: 'bearer' }).send(patient());
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });
});

describe('$validate', () => {
  it('answers 200 with an OperationOutcome either way and stores nothing', async () => {
    const ok = await request(t.app).post('/fhir/Patient/$validate').auth(token, { type: 'bearer' }).send(patient('Validate'));
    expect(ok.status).toBe(200);
    expect(ok.body.issue.every((i: any) => i.severity === 'information')).toBe(true);
    const bad = await request(t.app).post('/fhir/Patient/$validate').auth(token, { type: 'bearer' }).send({ resourceType: 'Patient', gender: 42 });
    expect(bad.status).toBe(200);
    expect(bad.body.issue.some((i: any) => i.severity === 'error')).toBe(true);
    expect((await request(t.app).get('/fhir/Patient?family:exact=Validate').auth(token, { type: 'bearer' })).body.entry).toEqual([]);
  });
});

describe('metadata', () => {
  it('lists every type with interactions and search parameters', async () => {
    const res = await request(t.app).get('/fhir/metadata').auth(token, { type: 'bearer' });
    expect(res.status).toBe(200);
    expect(res.body.resourceType).toBe('CapabilityStatement');
    const types = res.body.rest[0].resource.map((r: any) => r.type);
    for (const type of ['Patient', 'Organization', 'Practitioner', 'Coverage', 'Claim', 'ClaimResponse', 'PaymentReconciliation', 'PaymentNotice', 'Subscription', 'PatientCredit']) {
      expect(types).toContain(type);
    }
    const claimEntry = res.body.rest[0].resource.find((r: any) => r.type === 'Claim');
    expect(claimEntry.interaction.map((i: any) => i.code)).toContain('history-type');
    const params = claimEntry.searchParam.map((p: any) => p.name);
    expect(params).toEqual(expect.arrayContaining(['identifier', 'patient', 'created', 'lifecycle', '_id', '_lastUpdated']));
    const security = res.body.rest[0].security;
    expect(security.service[0].coding[0].code).toBe('SMART-on-FHIR');
    expect(security.extension[0].extension[0].valueUri).toMatch(/\/oauth2\/token$/);
  });
});

describe('health', () => {
  it('GET /healthz is 200', async () => {
    expect((await request(t.app).get('/healthz').auth(token, { type: 'bearer' })).status).toBe(200);
  });
});
