import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { CLAIM_ID_SYSTEM, claim, patient } from '../support/fixtures.ts';

// R4 conformance: each case is one of issue 13's "wrong today" answers, now right or an honest 400.

const BASE = 'https://billing.example';
let t: TestApp;
let token: string;
const get = (url: string) => request(t.app).get(url).auth(token, { type: 'bearer' });
const post = (url: string, body: unknown) => request(t.app).post(url).auth(token, { type: 'bearer' }).set('Content-Type', 'application/fhir+json').send(body as object);
const put = (url: string, body: unknown) => request(t.app).put(url).auth(token, { type: 'bearer' }).set('Content-Type', 'application/fhir+json').send(body as object);
const matchIds = (res: request.Response): string[] => {
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.entry.filter((e: any) => e.search.mode === 'match').map((e: any) => e.resource.id).sort();
};
const withIdentifier = (system: string, value: string) => ({ ...patient('Ident'), identifier: [{ system, value }] });

beforeAll(async () => {
  t = await startTestApp({ baseUrl: BASE });
  token = await t.token();
});
afterAll(() => t.close());

describe('conditional references', () => {
  it('in a transaction resolve to the one match, including one created earlier in the Bundle', async () => {
    const existing = (await post('/fhir/Patient', withIdentifier('urn:mrn', 'cr-1')).expect(201)).body.id;
    const res = await post('/fhir', {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { resource: claim('Patient?identifier=urn:mrn|cr-1', 'cr-bill-1'), request: { method: 'POST', url: 'Claim' } },
        { resource: withIdentifier('urn:mrn', 'cr-2'), request: { method: 'POST', url: 'Patient' } },
        { resource: claim('Patient?identifier=urn:mrn|cr-2', 'cr-bill-2'), request: { method: 'PUT', url: 'Claim?identifier=cr-bill-2' } },
      ],
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const created = (await get('/fhir/Patient?identifier=urn:mrn|cr-2')).body.entry[0].resource.id;
    expect((await get('/fhir/Claim?identifier=cr-bill-1')).body.entry[0].resource.patient.reference).toBe(`Patient/${existing}`);
    expect((await get('/fhir/Claim?identifier=cr-bill-2')).body.entry[0].resource.patient.reference).toBe(`Patient/${created}`);
  });

  it('fail the whole transaction with a 4xx when nothing or several match', async () => {
    await post('/fhir/Patient', withIdentifier('urn:mrn', 'twin')).expect(201);
    await post('/fhir/Patient', withIdentifier('urn:mrn', 'twin')).expect(201);
    for (const [criteria, status] of [['Patient?identifier=urn:mrn|nobody', 400], ['Patient?identifier=urn:mrn|twin', 412]] as const) {
      const res = await post('/fhir', {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { resource: withIdentifier('urn:mrn', `bystander-${status}`), request: { method: 'POST', url: 'Patient' } },
          { resource: claim(criteria, `cr-fail-${status}`), request: { method: 'POST', url: 'Claim' } },
        ],
      });
      expect(res.status).toBe(status);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(matchIds(await get(`/fhir/Claim?identifier=cr-fail-${status}`))).toEqual([]);
      expect(matchIds(await get(`/fhir/Patient?identifier=urn:mrn|bystander-${status}`))).toEqual([]);
    }
  });

  it('outside a transaction resolve the same way or refuse; the literal is never stored', async () => {
    const id = (await post('/fhir/Patient', withIdentifier('urn:mrn', 'cr-solo')).expect(201)).body.id;
    const made = await post('/fhir/Claim', claim('Patient?identifier=urn:mrn|cr-solo', 'cr-solo-bill')).expect(201);
    expect(made.body.patient.reference).toBe(`Patient/${id}`);
    const refused = await post('/fhir/Claim', claim('Patient?identifier=urn:mrn|none', 'cr-solo-none'));
    expect(refused.status).toBe(400);
    expect(matchIds(await get('/fhir/Claim?identifier=cr-solo-none'))).toEqual([]);
  });
});

describe('absolute references', () => {
  let p: string;
  const encounter = (subject: string) => ({
    resourceType: 'Encounter',
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    subject: { reference: subject },
  });
  beforeAll(async () => {
    p = (await post('/fhir/Patient', patient('Absolute')).expect(201)).body.id;
  });

  it('an absolute URL of this server is the local resource; one of another server is not', async () => {
    const local = (await post('/fhir/Claim', claim(`${BASE}/fhir/Patient/${p}`, 'abs-local')).expect(201)).body.id;
    const foreign = (await post('/fhir/Claim', claim(`https://other.example/fhir/Patient/${p}`, 'abs-foreign')).expect(201)).body.id;
    const relative = (await post('/fhir/Claim', claim(`Patient/${p}`, 'abs-relative')).expect(201)).body.id;
    const mine = [local, relative].sort();
    expect(matchIds(await get(`/fhir/Claim?patient=Patient/${p}`))).toEqual(mine);
    expect(matchIds(await get(`/fhir/Claim?patient=${p}`))).toEqual(mine);
    expect(matchIds(await get(`/fhir/Claim?patient=${encodeURIComponent(`${BASE}/fhir/Patient/${p}`)}`))).toEqual(mine);
    expect(matchIds(await get(`/fhir/Claim?patient=${encodeURIComponent(`https://other.example/fhir/Patient/${p}`)}`))).toEqual([foreign]);
    // _include follows the local absolute reference to the Patient.
    const included = await get(`/fhir/Claim?_id=${local}&_include=Claim:patient`).expect(200);
    expect(included.body.entry.map((e: any) => e.resource.id)).toEqual([local, p]);
  });

  it('parameters written as where(resolve() is Patient) find absolute local references', async () => {
    const local = (await post('/fhir/Encounter', encounter(`${BASE}/fhir/Patient/${p}`)).expect(201)).body.id;
    const foreign = (await post('/fhir/Encounter', encounter(`https://other.example/fhir/Patient/${p}`)).expect(201)).body.id;
    expect(matchIds(await get(`/fhir/Encounter?patient=Patient/${p}`))).toEqual([local]);
    // Another server's Patient is a Patient too: found by its own URL, never by the local Type/id.
    expect(matchIds(await get(`/fhir/Encounter?patient=${encodeURIComponent(`https://other.example/fhir/Patient/${p}`)}`))).toEqual([foreign]);
    expect((await get(`/fhir/Encounter/${foreign}`)).body.subject.reference).toBe(`https://other.example/fhir/Patient/${p}`);
  });

  it('the :Type modifier is honoured, and refused for a type the parameter cannot point to', async () => {
    const c = (await post('/fhir/Claim', claim(`Patient/${p}`, 'typed')).expect(201)).body.id;
    expect(matchIds(await get(`/fhir/Claim?patient:Patient=${p}&identifier=typed`))).toEqual([c]);
    expect(matchIds(await get(`/fhir/Claim?identifier=typed&patient:Patient=Patient/${p}`))).toEqual([c]);
    expect(matchIds(await get(`/fhir/Claim?identifier=typed&patient:Patient=Organization/${p}`))).toEqual([]);
    const refused = await get(`/fhir/Claim?patient:Organization=${p}`);
    expect(refused.status).toBe(400);
    expect(refused.body.issue[0].details.text).toMatch(/Organization/);
  });
});

describe('number, quantity, token and phonetic', () => {
  it('a quantity honours implicit precision, and unit versus code', async () => {
    const enc = (value: number, unit: string, code?: string) => ({
      resourceType: 'Encounter',
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      identifier: [{ system: 'urn:q', value: `${value}-${unit}-${code ?? ''}` }],
      length: { value, unit, ...(code && { system: 'http://unitsofmeasure.org', code }) },
    });
    const ids: Record<string, string> = {};
    for (const [k, r] of Object.entries({ a: enc(45, 'minutes', 'min'), b: enc(45.4, 'min'), c: enc(45.5, 'min', 'min'), d: enc(44.96, 'h', 'h') })) {
      ids[k] = (await post('/fhir/Encounter', r).expect(201)).body.id;
    }
    const q = async (v: string) => (await matchIds(await get(`/fhir/Encounter?identifier=urn:q|&length=${encodeURIComponent(v)}`))).map((id) => Object.keys(ids).find((k) => ids[k] === id)).sort();
    expect(await q('45')).toEqual(['a', 'b', 'd']); // [44.5, 45.5)
    expect(await q('45.0')).toEqual(['a', 'd']); // [44.95, 45.05)
    expect(await q('4.5e1')).toEqual(['a', 'b', 'd']);
    expect(await q('45|http://unitsofmeasure.org|min')).toEqual(['a']); // system and code
    expect(await q('45||min')).toEqual(['a', 'b']); // code or unit
    expect(await q('45||minutes')).toEqual(['a']);
    expect(await q('gt45')).toEqual(['b', 'c']);
    expect(await q('ne45')).toEqual(['c']);
  });

  it('a code has its implicit system', async () => {
    const id = (await post('/fhir/Patient', { ...patient('Gendered'), gender: 'female', identifier: [{ system: 'urn:g', value: 'g1' }] }).expect(201)).body.id;
    expect(matchIds(await get('/fhir/Patient?identifier=urn:g|g1&gender=http://hl7.org/fhir/administrative-gender|female'))).toEqual([id]);
    expect(matchIds(await get('/fhir/Patient?identifier=urn:g|g1&gender=female'))).toEqual([id]);
    expect(matchIds(await get('/fhir/Patient?identifier=urn:g|g1&gender=http://other|female'))).toEqual([]);
    const c = (await post('/fhir/Claim', claim('Patient/x', 'implicit-status')).expect(201)).body.id;
    expect(matchIds(await get('/fhir/Claim?identifier=implicit-status&status=http://hl7.org/fhir/fm-status|active'))).toEqual([c]);
  });

  it('phonetic matches names that sound alike (Double Metaphone), not prefixes', async () => {
    const smith = (await post('/fhir/Patient', { ...patient('Smith'), identifier: [{ system: 'urn:ph', value: '1' }] }).expect(201)).body.id;
    const smyth = (await post('/fhir/Patient', { ...patient('Smyth'), identifier: [{ system: 'urn:ph', value: '2' }] }).expect(201)).body.id;
    await post('/fhir/Patient', { ...patient('Smithers'), name: [{ family: 'Smithers', given: ['Zed'] }], identifier: [{ system: 'urn:ph', value: '3' }] }).expect(201);
    expect(matchIds(await get('/fhir/Patient?identifier=urn:ph|&phonetic=Smith'))).toEqual([smith, smyth].sort());
    expect(matchIds(await get('/fhir/Patient?identifier=urn:ph|&phonetic=Smi'))).toEqual([]);
  });
});

describe('updates that create', () => {
  it('a conditional update with no match and an id creates with that id (201), directly and in a transaction', async () => {
    const body = { ...patient('Upsert'), id: 'upsert-1', identifier: [{ system: 'urn:up', value: '1' }] };
    const res = await put('/fhir/Patient?identifier=urn:up|1', body);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.id).toBe('upsert-1');
    expect((await put('/fhir/Patient?identifier=urn:up|1', body)).status).toBe(200);
    const txn = await post('/fhir', {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [{ resource: { ...body, id: 'upsert-2', identifier: [{ system: 'urn:up', value: '2' }] }, request: { method: 'PUT', url: 'Patient?identifier=urn:up|2' } }],
    });
    expect(txn.status, JSON.stringify(txn.body)).toBe(200);
    expect(txn.body.entry[0].response.status).toBe('201');
    expect((await get('/fhir/Patient/upsert-2')).status).toBe(200);
  });

  it('a PUT that re-creates a deleted resource answers 201', async () => {
    await put('/fhir/Patient/phoenix', { ...patient('Phoenix'), id: 'phoenix' }).expect(201);
    await request(t.app).delete('/fhir/Patient/phoenix').auth(token, { type: 'bearer' }).expect(200);
    const again = await put('/fhir/Patient/phoenix', { ...patient('Phoenix'), id: 'phoenix' });
    expect(again.status).toBe(201);
    expect(again.headers.location).toBe(`${BASE}/fhir/Patient/phoenix/_history/3`);
    expect((await put('/fhir/Patient/phoenix', { ...patient('Phoenix'), id: 'phoenix' })).status).toBe(200);
  });
});

describe('transaction responses and size', () => {
  it('carry etag, lastModified and a versioned location', async () => {
    const res = await post('/fhir', {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [{ resource: patient('Etag'), request: { method: 'POST', url: 'Patient' } }],
    }).expect(200);
    const { response, resource } = res.body.entry[0];
    expect(response.etag).toBe('W/"1"');
    expect(response.lastModified).toBe(resource.meta.lastUpdated);
    expect(response.location).toBe(`Patient/${resource.id}/_history/1`);
  });

  it('1,000 entries, conditional ones included, in one transaction', async () => {
    const entry = Array.from({ length: 1000 }, (_, i) =>
      i % 2 === 0
        ? { resource: claim('Patient/big', `big-${i}`), request: { method: 'PUT', url: `Claim?identifier=${CLAIM_ID_SYSTEM}|big-${i}` } }
        : { resource: claim('Patient/big', `big-${i}`), request: { method: 'POST', url: 'Claim', ifNoneExist: `identifier=${CLAIM_ID_SYSTEM}|big-${i}` } },
    );
    const res = await post('/fhir', { resourceType: 'Bundle', type: 'transaction', entry });
    expect(res.status, JSON.stringify(res.body).slice(0, 500)).toBe(200);
    expect(res.body.entry).toHaveLength(1000);
    expect(res.body.entry.every((e: any) => e.response.status === '201')).toBe(true);
    expect((await get('/fhir/Claim?patient=Patient/big&_summary=count')).body.total).toBe(1000);
  }, 120_000);
});

describe('search answers', () => {
  it('_elements keeps the mandatory elements', async () => {
    await post('/fhir/Claim', claim('Patient/el', 'elements-1')).expect(201);
    const res = await get('/fhir/Claim?identifier=elements-1&_elements=total').expect(200);
    const r = res.body.entry[0].resource;
    expect(Object.keys(r).sort()).toEqual(['created', 'id', 'insurance', 'meta', 'patient', 'priority', 'provider', 'resourceType', 'status', 'total', 'type', 'use']);
  });

  it('comma is OR on dates, each value with its own prefix', async () => {
    const a = (await post('/fhir/Claim', claim('Patient/dates', 'd1', '2021-01-10')).expect(201)).body.id;
    const b = (await post('/fhir/Claim', claim('Patient/dates', 'd2', '2022-06-01')).expect(201)).body.id;
    await post('/fhir/Claim', claim('Patient/dates', 'd3', '2023-03-03')).expect(201);
    expect(matchIds(await get('/fhir/Claim?patient=Patient/dates&created=2021-01-10,2022-06'))).toEqual([a, b].sort());
    expect(matchIds(await get('/fhir/Claim?patient=Patient/dates&created=lt2021-06,ge2022-01-01&created=lt2023'))).toEqual([a, b].sort());
  });

  it('Location?near is a 400 that says it is not supported', async () => {
    const res = await get('/fhir/Location?near=42.25|-83.69|10|km');
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });

  it('pages by keyset: an update between pages neither skips nor repeats', async () => {
    const made: string[] = [];
    for (let i = 0; i < 7; i++) made.push((await post('/fhir/Claim', claim('Patient/pager', `page-${i}`)).expect(201)).body.id);
    const seen: string[] = [];
    let url: string | undefined = '/fhir/Claim?patient=Patient/pager&_count=3';
    let updated = false;
    while (url) {
      const page: request.Response = await get(url).expect(200);
      seen.push(...page.body.entry.map((e: any) => e.resource.id));
      if (!updated) {
        // Touch one already returned and one not yet returned.
        for (const id of [seen[0], made.find((m) => !seen.includes(m))!]) {
          const current = (await get(`/fhir/Claim/${id}`)).body;
          await put(`/fhir/Claim/${id}`, { ...current, status: 'active' }).expect(200);
        }
        updated = true;
      }
      const next = page.body.link.find((l: any) => l.relation === 'next')?.url as string | undefined;
      url = next?.slice(next.indexOf('/fhir'));
    }
    expect(seen.sort()).toEqual(made.sort());
  });
});

describe('CapabilityStatement', () => {
  it('every search parameter it advertises is answered, and what it does not do is not advertised', async () => {
    const cs = (await get('/fhir/metadata').expect(200)).body;
    const rest = cs.rest[0];
    expect(rest.interaction.map((i: any) => i.code)).toEqual(['transaction', 'batch', 'search-system', 'history-system']);
    const location = rest.resource.find((r: any) => r.type === 'Location');
    expect(location.searchParam.map((p: any) => p.name)).not.toContain('near');
    expect(rest.resource.find((r: any) => r.type === 'Patient').operation.map((o: any) => o.name)).toContain('everything');
    const tenant = await t.token('system/*.cruds', 'capability');
    for (const resource of rest.resource) {
      const entry = resource.searchParam.map((p: any) => ({ request: { method: 'GET', url: `${resource.type}?${p.name}:missing=true&_count=1` } }));
      const res = await request(t.app).post('/fhir').auth(tenant, { type: 'bearer' }).set('Content-Type', 'application/fhir+json').send({ resourceType: 'Bundle', type: 'batch', entry });
      expect(res.status).toBe(200);
      const refused = res.body.entry.map((e: any, i: number) => [entry[i].request.url, e.response.status]).filter(([, status]: string[]) => status !== '200');
      expect(refused).toEqual([]);
    }
  }, 60_000);
});
