import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { claim, patient } from '../support/fixtures.ts';

// $graphql (FhirRouter's) reads through our repository: the tenant and the token's scopes apply.

let t: TestApp;
let token: string;
const auth = { type: 'bearer' as const };
const graphql = (query: string, as = token) => request(t.app).post('/fhir/$graphql').auth(as, auth).set('Content-Type', 'application/json').send({ query });

beforeAll(async () => {
  t = await startTestApp();
  token = await t.token();
});
afterAll(() => t.close());

describe('$graphql', () => {
  it('searches and reads through the repository', async () => {
    const p = (await request(t.app).post('/fhir/Patient').auth(token, auth).send(patient('Graph')).expect(201)).body.id;
    await request(t.app).post('/fhir/Claim').auth(token, auth).send(claim(`Patient/${p}`, 'graph-1')).expect(201);
    const res = await graphql(`{ ClaimList(identifier: "graph-1") { id status patient { reference } } Patient(id: "${p}") { name { family } } }`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.data.ClaimList).toHaveLength(1);
    expect(res.body.data.ClaimList[0].patient.reference).toBe(`Patient/${p}`);
    expect(res.body.data.Patient.name[0].family).toBe('Graph');
  });

  it('keeps to the tenant and the scopes', async () => {
    const other = await t.token('system/*.cruds', 'graph-other');
    const res = await graphql('{ ClaimList(identifier: "graph-1") { id } }', other);
    expect(res.status).toBe(200);
    expect(res.body.data.ClaimList).toEqual([]);
    const patientsOnly = await t.token('system/Patient.rs');
    const refused = await graphql('{ ClaimList(identifier: "graph-1") { id } }', patientsOnly);
    expect(JSON.stringify(refused.body)).toMatch(/scopes do not allow search on Claim/);
    expect(refused.body.data?.ClaimList ?? null).toBeNull();
  });
});
