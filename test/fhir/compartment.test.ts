import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { claim, patient } from '../support/fixtures.ts';

// The Patient compartment: Patient/{id}/Claim, Patient/{id}/* and Patient/{id}/$everything.

let t: TestApp;
let token: string;
const get = (url: string, as = token) => request(t.app).get(url).auth(as, { type: 'bearer' });
const post = async (url: string, body: object): Promise<string> =>
  (await request(t.app).post(url).auth(token, { type: 'bearer' }).set('Content-Type', 'application/fhir+json').send(body).expect(201)).body.id;
const matched = (res: request.Response): string[] => {
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.entry.filter((e: any) => e.search.mode === 'match').map((e: any) => `${e.resource.resourceType}/${e.resource.id}`).sort();
};
let ann: string;
let bob: string;
const mine: string[] = [];

beforeAll(async () => {
  t = await startTestApp();
  token = await t.token();
  ann = await post('/fhir/Patient', patient('Compartment'));
  bob = await post('/fhir/Patient', patient('Outsider'));
  mine.push(`Claim/${await post('/fhir/Claim', claim(`Patient/${ann}`, 'comp-1'))}`);
  // In Ann's compartment as payee only.
  mine.push(`Claim/${await post('/fhir/Claim', { ...claim(`Patient/${bob}`, 'comp-2'), payee: { type: { text: 'subscriber' }, party: { reference: `Patient/${ann}` } } })}`);
  await post('/fhir/Claim', claim(`Patient/${bob}`, 'comp-3'));
  mine.push(`Encounter/${await post('/fhir/Encounter', { resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }, subject: { reference: `Patient/${ann}` } })}`);
});
afterAll(() => t.close());

describe('Patient compartment', () => {
  it('Patient/{id}/Claim finds the claims of which the patient is patient or payee, with further parameters', async () => {
    expect(matched(await get(`/fhir/Patient/${ann}/Claim`))).toEqual(mine.filter((m) => m.startsWith('Claim/')).sort());
    expect(matched(await get(`/fhir/Patient/${ann}/Claim?identifier=comp-1`))).toEqual([mine[0]]);
    expect(matched(await get(`/fhir/Patient/${bob}/Claim?identifier=comp-1`))).toEqual([]);
    expect((await get(`/fhir/Patient/${ann}/PaymentNotice`)).status).toBe(400); // not in the compartment
    expect((await get(`/fhir/Claim/${mine[0].split('/')[1]}/Encounter`)).status).toBe(404);
  });

  it('Patient/{id}/* and $everything hold the patient and its compartment, nothing of others', async () => {
    const all = [`Patient/${ann}`, ...mine].sort();
    expect(matched(await get(`/fhir/Patient/${ann}/*`))).toEqual(all);
    const everything = await get(`/fhir/Patient/${ann}/$everything`);
    expect(matched(everything)).toEqual(all);
    expect(everything.body.entry[0].resource.id).toBe(ann);
    expect((await get('/fhir/Patient/nobody/$everything')).status).toBe(404);
  });

  it('$everything leaves out the types the token may not search, and says so', async () => {
    const limited = await t.token('system/Patient.rs system/Claim.s');
    const res = await get(`/fhir/Patient/${ann}/$everything`, limited);
    expect(matched(res)).toEqual([`Patient/${ann}`, ...mine.filter((m) => m.startsWith('Claim/'))].sort());
    const note = res.body.entry.find((e: any) => e.search.mode === 'outcome');
    expect(note.resource.issue[0].details.text).toMatch(/Encounter/);
    expect((await get(`/fhir/Patient/${ann}/Encounter`, limited)).status).toBe(403);
  });
});
