import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { claim, patient } from '../support/fixtures.ts';

// HTTP semantics R4 asks for beyond the basic interactions: conditional read, HEAD, Prefer,
// _summary, FHIRPath Patch and $graphql.

let t: TestApp;
let token: string;
const auth = { type: 'bearer' as const };
const json = 'application/fhir+json';

beforeAll(async () => {
  t = await startTestApp();
  token = await t.token();
});
afterAll(() => t.close());

async function newPatient(family = 'Reads'): Promise<{ id: string; lastModified: string }> {
  const res = await request(t.app).post('/fhir/Patient').auth(token, auth).set('Content-Type', json).send(patient(family)).expect(201);
  return { id: res.body.id, lastModified: res.headers['last-modified'] };
}

describe('conditional read and HEAD', () => {
  it('If-None-Match naming the current version is a 304; another version reads', async () => {
    const { id } = await newPatient();
    const res = await request(t.app).get(`/fhir/Patient/${id}`).auth(token, auth).set('If-None-Match', 'W/"1"');
    expect(res.status).toBe(304);
    expect(res.text).toBe('');
    expect((await request(t.app).get(`/fhir/Patient/${id}`).auth(token, auth).set('If-None-Match', 'W/"2"')).status).toBe(200);
  });

  it('If-Modified-Since not older than the last update is a 304; an older date reads', async () => {
    const { id, lastModified } = await newPatient();
    expect((await request(t.app).get(`/fhir/Patient/${id}`).auth(token, auth).set('If-Modified-Since', lastModified)).status).toBe(304);
    const before = new Date(Date.parse(lastModified) - 60_000).toUTCString();
    expect((await request(t.app).get(`/fhir/Patient/${id}`).auth(token, auth).set('If-Modified-Since', before)).status).toBe(200);
  });

  it('HEAD answers as GET without a body', async () => {
    const { id } = await newPatient();
    const res = await request(t.app).head(`/fhir/Patient/${id}`).auth(token, auth);
    expect(res.status).toBe(200);
    expect(res.headers.etag).toBe('W/"1"');
    expect(res.text ?? '').toBe('');
    expect((await request(t.app).head('/fhir/Patient/nobody-here').auth(token, auth)).status).toBe(404);
  });
});

describe('Prefer: return', () => {
  it('minimal answers no body, OperationOutcome the outcome, representation the resource', async () => {
    const minimal = await request(t.app).post('/fhir/Patient').auth(token, auth).set('Content-Type', json).set('Prefer', 'return=minimal').send(patient('Pref'));
    expect(minimal.status).toBe(201);
    expect(minimal.headers.location).toMatch(/\/fhir\/Patient\/[^/]+\/_history\/1$/);
    expect(minimal.text).toBe('');
    const outcome = await request(t.app).post('/fhir/Patient').auth(token, auth).set('Content-Type', json).set('Prefer', 'return=OperationOutcome').send(patient('Pref'));
    expect(outcome.status).toBe(201);
    expect(outcome.body.resourceType).toBe('OperationOutcome');
    const full = await request(t.app).post('/fhir/Patient').auth(token, auth).set('Content-Type', json).set('Prefer', 'return=representation').send(patient('Pref'));
    expect(full.body.resourceType).toBe('Patient');
  });
});

describe('_summary', () => {
  it('true keeps the summary elements, text the narrative, each with the mandatory elements', async () => {
    const body = { ...claim('Patient/sum', 'summary-1'), text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">Claim</div>' }, supportingInfo: [{ sequence: 1, category: { text: 'note' } }] };
    await request(t.app).post('/fhir/Claim').auth(token, auth).set('Content-Type', json).send(body).expect(201);
    const summary = (await request(t.app).get('/fhir/Claim?identifier=summary-1&_summary=true').auth(token, auth).expect(200)).body.entry[0].resource;
    expect(summary.status).toBeDefined(); // a summary element
    expect(summary.created).toBeDefined();
    expect(summary.identifier).toBeUndefined(); // not summary elements of Claim in R4
    expect(summary.total).toBeUndefined();
    expect(summary.supportingInfo).toBeUndefined();
    expect(summary.text).toBeUndefined();
    expect(summary.meta.tag.map((t: any) => t.code)).toContain('SUBSETTED');
    const text = (await request(t.app).get('/fhir/Claim?identifier=summary-1&_summary=text').auth(token, auth).expect(200)).body.entry[0].resource;
    expect(text.text.div).toContain('Claim');
    expect(text.identifier).toBeUndefined();
    expect(text.patient).toBeDefined(); // mandatory
  });
});

describe('FHIRPath Patch', () => {
  it('applies a Parameters patch, and refuses a malformed one with a 400', async () => {
    const { id } = await newPatient('Patchy');
    const patch = {
      resourceType: 'Parameters',
      parameter: [{ name: 'operation', part: [{ name: 'type', valueCode: 'replace' }, { name: 'path', valueString: 'Patient.birthDate' }, { name: 'value', valueDate: '1990-01-01' }] }],
    };
    const res = await request(t.app).patch(`/fhir/Patient/${id}`).auth(token, auth).set('Content-Type', json).send(patch);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.birthDate).toBe('1990-01-01');
    expect(res.body.meta.versionId).toBe('2');
    const bad = { resourceType: 'Parameters', parameter: [{ name: 'operation', part: [{ name: 'type', valueCode: 'explode' }] }] };
    const refused = await request(t.app).patch(`/fhir/Patient/${id}`).auth(token, auth).set('Content-Type', json).send(bad);
    expect(refused.status).toBe(400);
    expect((await request(t.app).get(`/fhir/Patient/${id}`).auth(token, auth)).body.meta.versionId).toBe('2');
  });
});

describe('system level', () => {
  it('GET /fhir?_type=... searches several types, pages by keyset, and refuses a parameter a type lacks', async () => {
    const tenant = await t.token('system/*.cruds', 'system-level');
    const as = (url: string) => request(t.app).get(url).auth(tenant, auth);
    const made: string[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await request(t.app).post('/fhir/Claim').auth(tenant, auth).set('Content-Type', json).send(claim('Patient/sys', `sys-${i}`)).expect(201);
      made.push(`Claim/${c.body.id}`);
    }
    const p = await request(t.app).post('/fhir/Patient').auth(tenant, auth).set('Content-Type', json).send(patient('System')).expect(201);
    made.push(`Patient/${p.body.id}`);
    const seen: string[] = [];
    let url: string | undefined = '/fhir?_type=Patient,Claim&_count=2&_lastUpdated=ge2020-01-01';
    while (url) {
      const page: request.Response = await as(url);
      expect(page.status, JSON.stringify(page.body)).toBe(200);
      seen.push(...page.body.entry.map((e: any) => `${e.resource.resourceType}/${e.resource.id}`));
      const next = page.body.link.find((l: any) => l.relation === 'next')?.url as string | undefined;
      url = next?.slice(next.indexOf('/fhir'));
    }
    expect(seen.sort()).toEqual(made.sort());
    expect((await as('/fhir?_type=Patient,Claim&_total=accurate&_count=1')).body.total).toBe(4);
    expect((await as('/fhir?_type=Claim,Patient&created=2024')).status).toBe(400); // Patient has no created
    expect((await as('/fhir?_type=Claim&_sort=-_lastUpdated')).status).toBe(400);
  });

  it('GET /fhir/_history lists every type the token may search, newest first', async () => {
    const tenant = await t.token('system/*.cruds', 'system-history');
    const c = await request(t.app).post('/fhir/Claim').auth(tenant, auth).set('Content-Type', json).send(claim('Patient/h', 'hist-1')).expect(201);
    const p = await request(t.app).post('/fhir/Patient').auth(tenant, auth).set('Content-Type', json).send(patient('History')).expect(201);
    const res = await request(t.app).get('/fhir/_history').auth(tenant, auth).expect(200);
    expect(res.body.type).toBe('history');
    expect(res.body.entry.map((e: any) => `${e.resource.resourceType}/${e.resource.id}`)).toEqual([`Patient/${p.body.id}`, `Claim/${c.body.id}`]);
    expect(res.body.entry[1].request).toEqual({ method: 'POST', url: 'Claim' });
    const claimsOnly = await t.token('system/Claim.s', 'system-history');
    const limited = await request(t.app).get('/fhir/_history').auth(claimsOnly, auth).expect(200);
    expect(limited.body.entry.map((e: any) => e.resource.resourceType)).toEqual(['Claim']);
  });
});
