import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { CLAIM_ID_SYSTEM, claim, patient } from '../support/fixtures.ts';

let t: TestApp;
let token: string;
let patientA: string;
let patientB: string;
const claimIds: Record<string, string> = {};

beforeAll(async () => {
  t = await startTestApp();
  token = await t.token();
  patientA = (await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).send(patient('Åberg')).expect(201)).body.id;
  patientB = (await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).send(patient('Baker')).expect(201)).body.id;
  const specs: [string, string, string][] = [
    ['bill-1', patientA, '2024-01-15'],
    ['bill-2', patientA, '2024-03-01'],
    ['bill-3', patientB, '2024-06-30'],
  ];
  for (const [bill, p, created] of specs) {
    claimIds[bill] = (await request(t.app).post('/fhir/Claim').auth(token, { type: 'bearer' }).send(claim(`Patient/${p}`, bill, created)).expect(201)).body.id;
  }
});
afterAll(() => t.close());

const ids = (res: request.Response): string[] => res.body.entry.filter((e: any) => e.search.mode === 'match').map((e: any) => e.resource.id).sort();
const expectClaims = (res: request.Response, bills: string[]): void => {
  expect(res.status).toBe(200);
  expect(ids(res)).toEqual(bills.map((b) => claimIds[b]).sort());
};

describe('token', () => {
  it('system|code, code, |code and system|', async () => {
    expectClaims(await request(t.app).get(`/fhir/Claim?identifier=${CLAIM_ID_SYSTEM}|bill-1`).auth(token, { type: 'bearer' }), ['bill-1']);
    expectClaims(await request(t.app).get('/fhir/Claim?identifier=bill-2').auth(token, { type: 'bearer' }), ['bill-2']);
    expectClaims(await request(t.app).get('/fhir/Claim?identifier=|bill-2').auth(token, { type: 'bearer' }), []);
    expectClaims(await request(t.app).get(`/fhir/Claim?identifier=${CLAIM_ID_SYSTEM}|`).auth(token, { type: 'bearer' }), ['bill-1', 'bill-2', 'bill-3']);
    expectClaims(await request(t.app).get('/fhir/Claim?identifier=other-system|bill-1').auth(token, { type: 'bearer' }), []);
  });

  it('comma is OR, repeated parameter is AND, :not negates', async () => {
    expectClaims(await request(t.app).get('/fhir/Claim?identifier=bill-1,bill-3').auth(token, { type: 'bearer' }), ['bill-1', 'bill-3']);
    expectClaims(await request(t.app).get('/fhir/Claim?identifier=bill-1,bill-3&identifier=bill-3').auth(token, { type: 'bearer' }), ['bill-3']);
    expectClaims(await request(t.app).get('/fhir/Claim?identifier:not=bill-1').auth(token, { type: 'bearer' }), ['bill-2', 'bill-3']);
    expectClaims(await request(t.app).get('/fhir/Claim?status=active&use=claim').auth(token, { type: 'bearer' }), ['bill-1', 'bill-2', 'bill-3']);
  });
});

describe('reference', () => {
  it('by Type/id and by id', async () => {
    expectClaims(await request(t.app).get(`/fhir/Claim?patient=Patient/${patientA}`).auth(token, { type: 'bearer' }), ['bill-1', 'bill-2']);
    expectClaims(await request(t.app).get(`/fhir/Claim?patient=${patientB}`).auth(token, { type: 'bearer' }), ['bill-3']);
  });
});

describe('date', () => {
  it('prefixes compare ranges', async () => {
    expectClaims(await request(t.app).get('/fhir/Claim?created=2024-03-01').auth(token, { type: 'bearer' }), ['bill-2']);
    expectClaims(await request(t.app).get('/fhir/Claim?created=2024-03').auth(token, { type: 'bearer' }), ['bill-2']);
    expectClaims(await request(t.app).get('/fhir/Claim?created=ge2024-03-01').auth(token, { type: 'bearer' }), ['bill-2', 'bill-3']);
    expectClaims(await request(t.app).get('/fhir/Claim?created=gt2024-03-01').auth(token, { type: 'bearer' }), ['bill-3']);
    expectClaims(await request(t.app).get('/fhir/Claim?created=lt2024-03-01').auth(token, { type: 'bearer' }), ['bill-1']);
    expectClaims(await request(t.app).get('/fhir/Claim?created=le2024-03').auth(token, { type: 'bearer' }), ['bill-1', 'bill-2']);
    expectClaims(await request(t.app).get('/fhir/Claim?created=ge2024-02&created=lt2024-07').auth(token, { type: 'bearer' }), ['bill-2', 'bill-3']);
    expectClaims(await request(t.app).get('/fhir/Claim?created=2023').auth(token, { type: 'bearer' }), []);
  });

  it('_lastUpdated ranges', async () => {
    expectClaims(await request(t.app).get('/fhir/Claim?_lastUpdated=gt2000-01-01').auth(token, { type: 'bearer' }), ['bill-1', 'bill-2', 'bill-3']);
    expectClaims(await request(t.app).get('/fhir/Claim?_lastUpdated=lt2000-01-01').auth(token, { type: 'bearer' }), []);
  });

  it('an invalid date is 400', async () => {
    const res = await request(t.app).get('/fhir/Claim?created=yesterday').auth(token, { type: 'bearer' });
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });
});

describe('string', () => {
  it('starts-with, case- and accent-insensitive; :exact and :contains', async () => {
    const find = async (q: string): Promise<string[]> =>
      (await request(t.app).get(`/fhir/Patient?${q}`).auth(token, { type: 'bearer' })).body.entry.map((e: any) => e.resource.id).sort();
    expect(await find('family=aber')).toEqual([patientA]);
    expect(await find('name=bak')).toEqual([patientB]);
    expect(await find('family:exact=Baker')).toEqual([patientB]);
    expect(await find('family:exact=baker')).toEqual([]);
    expect(await find('family:contains=ake')).toEqual([patientB]);
  });
});

describe('_id, _count, _sort, _total and paging', () => {
  it('_id', async () => {
    expectClaims(await request(t.app).get(`/fhir/Claim?_id=${claimIds['bill-1']},${claimIds['bill-3']}`).auth(token, { type: 'bearer' }), ['bill-1', 'bill-3']);
  });

  it('sorts by a parameter, both ways', async () => {
    const asc = await request(t.app).get('/fhir/Claim?_sort=created').auth(token, { type: 'bearer' });
    expect(asc.body.entry.map((e: any) => e.resource.identifier[0].value)).toEqual(['bill-1', 'bill-2', 'bill-3']);
    const desc = await request(t.app).get('/fhir/Claim?_sort=-created').auth(token, { type: 'bearer' });
    expect(desc.body.entry.map((e: any) => e.resource.identifier[0].value)).toEqual(['bill-3', 'bill-2', 'bill-1']);
  });

  it('pages with next links and counts with _total=accurate', async () => {
    const first = await request(t.app).get('/fhir/Claim?_sort=created&_count=2&_total=accurate').auth(token, { type: 'bearer' });
    expect(first.body.total).toBe(3);
    expect(first.body.entry).toHaveLength(2);
    const next = new URL(first.body.link.find((l: any) => l.relation === 'next').url);
    const second = await request(t.app).get(next.pathname + next.search).auth(token, { type: 'bearer' });
    expect(second.body.entry.map((e: any) => e.resource.identifier[0].value)).toEqual(['bill-3']);
    expect(second.body.link.find((l: any) => l.relation === 'next')).toBeUndefined();
    const none = await request(t.app).get('/fhir/Claim?_count=2').auth(token, { type: 'bearer' });
    expect(none.body.total).toBeUndefined();
  });

  it('_summary: count answers the total only, data drops the narrative, true and text subset (test/fhir/interactions.test.ts)', async () => {
    const count = await request(t.app).get('/fhir/Claim?_summary=count').auth(token, { type: 'bearer' });
    expect(count.body.total).toBe(3);
    expect(count.body.entry).toEqual([]);
    const p = await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' })
      .send({ ...patient('Narrative'), text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">Ann</div>' } }).expect(201);
    const data = await request(t.app).get(`/fhir/Patient?_id=${p.body.id}&_summary=data`).auth(token, { type: 'bearer' });
    expect(data.body.entry[0].resource.text).toBeUndefined();
    expect(data.body.entry[0].resource.name[0].family).toBe('Narrative');
    expect(data.body.entry[0].resource.meta.tag).toContainEqual(expect.objectContaining({ code: 'SUBSETTED' }));
    for (const summary of ['true', 'text']) {
      const res = await request(t.app).get(`/fhir/Claim?_summary=${summary}`).auth(token, { type: 'bearer' }).expect(200);
      expect(res.body.entry[0].resource.meta.tag).toContainEqual(expect.objectContaining({ code: 'SUBSETTED' }));
    }
  });

  it('POST _search takes form parameters', async () => {
    const res = await request(t.app).post('/fhir/Claim/_search').auth(token, { type: 'bearer' }).type('form').send({ identifier: 'bill-2' });
    expectClaims(res, ['bill-2']);
  });
});

describe('_include and _revinclude', () => {
  it('includes the patient of each claim', async () => {
    const res = await request(t.app).get('/fhir/Claim?identifier=bill-3&_include=Claim:patient').auth(token, { type: 'bearer' });
    expect(res.status).toBe(200);
    const included = res.body.entry.filter((e: any) => e.search.mode === 'include');
    expect(included.map((e: any) => `${e.resource.resourceType}/${e.resource.id}`)).toEqual([`Patient/${patientB}`]);
  });

  it('reverse-includes the ClaimResponses of a claim', async () => {
    const response = {
      resourceType: 'ClaimResponse',
      status: 'active',
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
      use: 'claim',
      patient: { reference: `Patient/${patientA}` },
      created: '2024-02-01',
      insurer: { display: 'Payer' },
      outcome: 'complete',
      request: { reference: `Claim/${claimIds['bill-1']}` },
    };
    const cr = await request(t.app).post('/fhir/ClaimResponse').auth(token, { type: 'bearer' }).send(response).expect(201);
    const res = await request(t.app).get('/fhir/Claim?identifier=bill-1&_revinclude=ClaimResponse:request').auth(token, { type: 'bearer' });
    const included = res.body.entry.filter((e: any) => e.search.mode === 'include');
    expect(included.map((e: any) => e.resource.id)).toEqual([cr.body.id]);
    const byRequest = await request(t.app).get(`/fhir/ClaimResponse?request=Claim/${claimIds['bill-1']}&outcome=complete`).auth(token, { type: 'bearer' });
    expect(byRequest.body.entry.map((e: any) => e.resource.id)).toEqual([cr.body.id]);
  });
});

describe('refusals', () => {
  it('an unknown parameter is 400', async () => {
    const res = await request(t.app).get('/fhir/Claim?colour=blue').auth(token, { type: 'bearer' });
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0].details.text).toContain('colour');
  });

  it('a chained parameter is answered (test/fhir/chain.test.ts has the rest)', async () => {
    expectClaims(await request(t.app).get('/fhir/Claim?patient.name=Baker').auth(token, { type: 'bearer' }), ['bill-3']);
  });

  it('deleted resources do not match', async () => {
    const p = await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).send(patient('Gone')).expect(201);
    await request(t.app).delete(`/fhir/Patient/${p.body.id}`).auth(token, { type: 'bearer' }).expect(200);
    const res = await request(t.app).get('/fhir/Patient?family:exact=Gone').auth(token, { type: 'bearer' });
    expect(res.body.entry).toEqual([]);
  });
});
