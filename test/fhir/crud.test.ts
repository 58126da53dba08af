import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { claim, patient } from '../support/fixtures.ts';

const FHIR_JSON = 'application/fhir+json';
let t: TestApp;
let token: string;
beforeAll(async () => {
  t = await startTestApp();
  token = await t.token();
});
afterAll(() => t.close());

async function createPatient(): Promise<string> {
  const res = await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).set('Content-Type', FHIR_JSON).send(patient());
  expect(res.status).toBe(201);
  return res.body.id;
}

describe('create and read', () => {
  it('creates with server id, version 1, Location, ETag and Last-Modified', async () => {
    const res = await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).set('Content-Type', FHIR_JSON).send({ ...patient(), id: 'client-chosen' });
    expect(res.status).toBe(201);
    expect(res.body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.body.meta.versionId).toBe('1');
    expect(res.headers.etag).toBe('W/"1"');
    expect(res.headers.location).toMatch(new RegExp(`/fhir/Patient/${res.body.id}/_history/1$`));
    expect(new Date(res.headers['last-modified']).getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(res.headers['content-type']).toContain('application/fhir+json');

    const read = await request(t.app).get(`/fhir/Patient/${res.body.id}`).auth(token, { type: 'bearer' });
    expect(read.status).toBe(200);
    expect(read.body).toEqual(res.body);
    expect(read.headers.etag).toBe('W/"1"');
  });

  it('accepts plain application/json', async () => {
    const res = await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).send(patient('Json'));
    expect(res.status).toBe(201);
    expect(res.body.name[0].family).toBe('Json');
  });

  it('answers 404 OperationOutcome for an unknown id and for an unsupported type', async () => {
    const missing = await request(t.app).get('/fhir/Patient/does-not-exist').auth(token, { type: 'bearer' });
    expect(missing.status).toBe(404);
    expect(missing.body.resourceType).toBe('OperationOutcome');
    const type = await request(t.app).get('/fhir/Medication/x').auth(token, { type: 'bearer' });
    expect(type.status).toBe(404);
    expect(type.body.issue[0].details.text).toContain('Medication');
  });

  it('rejects a resource whose type does not match the URL', async () => {
    const res = await request(t.app).post('/fhir/Claim').auth(token, { type: 'bearer' }).send(patient());
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });
});

describe('update, If-Match and vread', () => {
  it('writes a new version and keeps the old one readable', async () => {
    const id = await createPatient();
    const v1 = (await request(t.app).get(`/fhir/Patient/${id}`).auth(token, { type: 'bearer' })).body;
    const upd = await request(t.app)
      .put(`/fhir/Patient/${id}`).auth(token, { type: 'bearer' })
      .set('If-Match', 'W/"1"')
      .send({ ...v1, name: [{ family: 'Jones' }] });
    expect(upd.status).toBe(200);
    expect(upd.body.meta.versionId).toBe('2');
    expect(upd.headers.etag).toBe('W/"2"');

    const old = await request(t.app).get(`/fhir/Patient/${id}/_history/1`).auth(token, { type: 'bearer' });
    expect(old.status).toBe(200);
    expect(old.body.name[0].family).toBe('Smith');
    const cur = await request(t.app).get(`/fhir/Patient/${id}/_history/2`).auth(token, { type: 'bearer' });
    expect(cur.body.name[0].family).toBe('Jones');
    expect((await request(t.app).get(`/fhir/Patient/${id}/_history/9`).auth(token, { type: 'bearer' })).status).toBe(404);
  });

  it('refuses a stale If-Match with 412 and changes nothing', async () => {
    const id = await createPatient();
    const v1 = (await request(t.app).get(`/fhir/Patient/${id}`).auth(token, { type: 'bearer' })).body;
    await request(t.app).put(`/fhir/Patient/${id}`).auth(token, { type: 'bearer' }).send({ ...v1, gender: 'female' }).expect(200);
    const stale = await request(t.app).put(`/fhir/Patient/${id}`).auth(token, { type: 'bearer' }).set('If-Match', 'W/"1"').send({ ...v1, gender: 'male' });
    expect(stale.status).toBe(412);
    expect(stale.body.resourceType).toBe('OperationOutcome');
    const now = await request(t.app).get(`/fhir/Patient/${id}`).auth(token, { type: 'bearer' });
    expect(now.body.gender).toBe('female');
    expect(now.body.meta.versionId).toBe('2');
  });

  it('rejects an id in the body that differs from the URL', async () => {
    const id = await createPatient();
    const res = await request(t.app).put(`/fhir/Patient/${id}`).auth(token, { type: 'bearer' }).send({ ...patient(), id: 'other' });
    expect(res.status).toBe(400);
  });

  it('creates on update of an unknown id (updateCreate)', async () => {
    const res = await request(t.app).put('/fhir/Patient/chosen-by-client-1').auth(token, { type: 'bearer' }).send({ ...patient(), id: 'chosen-by-client-1' });
    expect(res.status).toBe(201);
    expect(res.body.meta.versionId).toBe('1');
  });
});

describe('patch', () => {
  it('applies a JSON Patch as a new version', async () => {
    const id = await createPatient();
    const res = await request(t.app)
      .patch(`/fhir/Patient/${id}`).auth(token, { type: 'bearer' })
      .set('Content-Type', 'application/json-patch+json')
      .send([{ op: 'replace', path: '/birthDate', value: '1990-01-01' }]);
    expect(res.status).toBe(200);
    expect(res.body.birthDate).toBe('1990-01-01');
    expect(res.body.meta.versionId).toBe('2');
  });

  it('refuses a patch that makes the resource invalid', async () => {
    const id = await createPatient();
    const res = await request(t.app)
      .patch(`/fhir/Patient/${id}`).auth(token, { type: 'bearer' })
      .set('Content-Type', 'application/json-patch+json')
      .send([{ op: 'replace', path: '/birthDate', value: 'not a date' }]);
    expect(res.status).toBe(400);
    expect((await request(t.app).get(`/fhir/Patient/${id}`).auth(token, { type: 'bearer' })).body.meta.versionId).toBe('1');
  });

  it('refuses a failing test op and a stale If-Match', async () => {
    const id = await createPatient();
    const failed = await request(t.app)
      .patch(`/fhir/Patient/${id}`).auth(token, { type: 'bearer' })
      .set('Content-Type', 'application/json-patch+json')
      .send([{ op: 'test', path: '/birthDate', value: '2000-01-01' }]);
    expect(failed.status).toBe(400);
    const stale = await request(t.app)
      .patch(`/fhir/Patient/${id}`).auth(token, { type: 'bearer' })
      .set('Content-Type', 'application/json-patch+json')
      .set('If-Match', 'W/"7"')
      .send([{ op: 'add', path: '/gender', value: 'other' }]);
    expect(stale.status).toBe(412);
  });
});

describe('delete', () => {
  it('makes read answer 410 Gone and keeps history', async () => {
    const id = await createPatient();
    expect((await request(t.app).delete(`/fhir/Patient/${id}`).auth(token, { type: 'bearer' })).status).toBe(200);
    const read = await request(t.app).get(`/fhir/Patient/${id}`).auth(token, { type: 'bearer' });
    expect(read.status).toBe(410);
    expect(read.body.resourceType).toBe('OperationOutcome');
    const history = await request(t.app).get(`/fhir/Patient/${id}/_history`).auth(token, { type: 'bearer' });
    expect(history.status).toBe(200);
    expect(history.body.total).toBe(2);
    expect(history.body.entry[0].request.method).toBe('DELETE');
    expect(history.body.entry[0].resource).toBeUndefined();
    expect(history.body.entry[1].resource.id).toBe(id);
    expect((await request(t.app).get(`/fhir/Patient/${id}/_history/2`).auth(token, { type: 'bearer' })).status).toBe(410);
  });

  it('answers 404 for an unknown id', async () => {
    expect((await request(t.app).delete('/fhir/Patient/nobody').auth(token, { type: 'bearer' })).status).toBe(404);
  });
});

describe('history', () => {
  it('lists instance versions newest first with paging', async () => {
    const id = await createPatient();
    for (const gender of ['male', 'female', 'other']) {
      const cur = (await request(t.app).get(`/fhir/Patient/${id}`).auth(token, { type: 'bearer' })).body;
      await request(t.app).put(`/fhir/Patient/${id}`).auth(token, { type: 'bearer' }).send({ ...cur, gender }).expect(200);
    }
    const page = await request(t.app).get(`/fhir/Patient/${id}/_history?_count=2`).auth(token, { type: 'bearer' });
    expect(page.body.type).toBe('history');
    expect(page.body.total).toBe(4);
    expect(page.body.entry.map((e: any) => e.resource.meta.versionId)).toEqual(['4', '3']);
    const next = page.body.link.find((l: any) => l.relation === 'next').url;
    const rest = await request(t.app).get(new URL(next).pathname + new URL(next).search).auth(token, { type: 'bearer' });
    expect(rest.body.entry.map((e: any) => e.resource.meta.versionId)).toEqual(['2', '1']);
  });

  it('lists type history with _since', async () => {
    const before = new Date().toISOString();
    const p = await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).send(patient()).expect(201);
    const c = await request(t.app).post('/fhir/Claim').auth(token, { type: 'bearer' }).send(claim(`Patient/${p.body.id}`)).expect(201);
    const res = await request(t.app).get(`/fhir/Claim/_history?_since=${encodeURIComponent(before)}`).auth(token, { type: 'bearer' });
    expect(res.status).toBe(200);
    expect(res.body.entry.map((e: any) => e.resource.id)).toEqual([c.body.id]);
    expect(res.body.entry[0].request).toEqual({ method: 'POST', url: 'Claim' });
  });
});

describe('conditional create', () => {
  it('creates once for If-None-Exist and returns the existing one after', async () => {
    const p = await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).send(patient()).expect(201);
    const body = claim(`Patient/${p.body.id}`, 'cond-bill-1');
    const criteria = 'identifier=https://fhir.cairhealth.com/fhir/identifier/claim-id|cond-bill-1';
    const first = await request(t.app).post('/fhir/Claim').auth(token, { type: 'bearer' }).set('If-None-Exist', criteria).send(body);
    expect(first.status).toBe(201);
    const second = await request(t.app).post('/fhir/Claim').auth(token, { type: 'bearer' }).set('If-None-Exist', criteria).send(body);
    expect(second.status).toBe(200);
    expect(second.body.id).toBe(first.body.id);
    const all = await request(t.app).get('/fhir/Claim?identifier=cond-bill-1&_total=accurate').auth(token, { type: 'bearer' });
    expect(all.body.total).toBe(1);
  });
});

describe('errors are OperationOutcomes', () => {
  it('malformed JSON is 400', async () => {
    const res = await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).set('Content-Type', FHIR_JSON).send('{"resourceType": "Patient",');
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue[0].details.text).toContain('Malformed JSON');
  });

  it('an invalid resource is 400 naming the element', async () => {
    const res = await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).send({ resourceType: 'Patient', birthDate: 'yesterday' });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body.issue)).toContain('Patient.birthDate');
  });

  it('an unknown element is 400', async () => {
    const res = await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).send({ resourceType: 'Patient', favouriteColour: 'blue' });
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });

  it('a body that is not JSON is 415, a write without a resource 400', async () => {
    const text = await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).set('Content-Type', 'text/plain').send('hello');
    expect(text.status).toBe(415);
    expect(text.body.resourceType).toBe('OperationOutcome');
    for (const body of ['null', '"a string"', '42']) {
      const res = await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).set('Content-Type', FHIR_JSON).send(body);
      expect(res.status).toBe(400);
      expect(res.body.resourceType).toBe('OperationOutcome');
    }
    expect((await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' })).status).toBe(400);
  });

  it('a non-JSON _format is 406, a bad _count 400', async () => {
    expect((await request(t.app).get('/fhir/Patient?_format=xml').auth(token, { type: 'bearer' })).status).toBe(406);
    const count = await request(t.app).get('/fhir/Patient?_count=abc').auth(token, { type: 'bearer' });
    expect(count.status).toBe(400);
    expect(count.body.resourceType).toBe('OperationOutcome');
  });

  it('a conditional delete without criteria is 400 and deletes nothing', async () => {
    const id = await createPatient();
    expect((await request(t.app).delete('/fhir/Patient').auth(token, { type: 'bearer' })).status).toBe(400);
    expect((await request(t.app).get(`/fhir/Patient/${id}`).auth(token, { type: 'bearer' })).status).toBe(200);
  });

  it('an unknown route is a 404 OperationOutcome', async () => {
    const res = await request(t.app).get('/fhir/Patient/a/b/c/d').auth(token, { type: 'bearer' });
    expect(res.status).toBe(404);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });
});
