import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Patient } from '@medplum/fhirtypes';
import { MAX_AMOUNT } from '../../src/billing/index.ts';
import { MAX_MONEY_VALUE } from '../../src/profiles/validate.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { claim, patient } from '../support/fixtures.ts';

/**
 * Hostile and malformed input under /fhir, one regression test per defect: each is a 4xx
 * OperationOutcome that says what is wrong (no stack, no SQL), and changes nothing.
 */
let t: TestApp;
let token: string;
let stored: Patient & { id: string };
beforeAll(async () => {
  t = await startTestApp();
  token = await t.token();
  stored = (await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).send(patient())).body;
});
afterAll(() => t.close());

const FHIR = 'application/fhir+json';
const deep = (levels: number, inner = '1'): string => '{"a":'.repeat(levels) + inner + '}'.repeat(levels);

/** Rows of the store, and the stored patient's content: what a refused request must leave alone. */
async function snapshot(): Promise<string> {
  const rows = await t.db.query<{ n: string }>('SELECT count(*)::text AS n FROM resource_history');
  const content = await t.db.query<{ content: string }>('SELECT content FROM resource WHERE id = $1', [stored.id]);
  return `${rows[0].n}:${content[0].content}`;
}

async function expectRefused(res: request.Response, status: number, text: RegExp): Promise<void> {
  expect(res.status, res.text.slice(0, 500)).toBe(status);
  expect(res.type).toBe(FHIR);
  expect(res.body.resourceType).toBe('OperationOutcome');
  expect(res.body.issue[0].details.text).toMatch(text);
  expect(res.text).not.toMatch(/ at .*\.(ts|js|mjs):\d+|SELECT |INSERT |syntax error|invalid byte sequence/);
}

const post = (path: string, body: string | object, type = FHIR) => request(t.app).post(`/fhir${path}`).auth(token, { type: 'bearer' }).type(type).send(body);

describe('bodies the guard refuses before any work', () => {
  const cases: [string, () => request.Test, number, RegExp][] = [
    ['a resource nested 50,000 deep', () => post('/Patient', `{"resourceType":"Patient","extension":[${deep(50_000)}]}`), 400, /nested more than 64 levels/],
    ['arrays nested 50,000 deep', () => post('/Patient', `{"resourceType":"Patient","name":${'['.repeat(50_000)}${']'.repeat(50_000)}}`), 400, /nested more than 64/],
    ['a Bundle nested deep', () => post('', `{"resourceType":"Bundle","type":"batch","entry":[{"resource":${deep(20_000)},"request":{"method":"POST","url":"Patient"}}]}`), 400, /nested more than 64/],
    ['a JSON Patch value nested deep', () => request(t.app).patch(`/fhir/Patient/${stored.id}`).auth(token, { type: 'bearer' }).type('application/json-patch+json').send(`[{"op":"add","path":"/gender","value":${deep(20_000)}}]`), 400, /nested more than 64/],
    ['$validate of a deep body', () => post('/Patient/$validate', `{"resourceType":"Patient","x":${deep(20_000)}}`), 400, /nested more than 64/],
    ['a NUL in a string', () => post('/Patient', { resourceType: 'Patient', name: [{ family: 'a\u0000b' }] }), 400, /NUL character/],
    ['a lone surrogate in a string', () => post('/Patient', '{"resourceType":"Patient","name":[{"family":"a\\ud800b"}]}'), 400, /lone UTF-16 surrogate/],
    ['a NUL in a property name', () => post('/Patient', '{"resourceType":"Patient","a\\u0000":1}'), 400, /property name .* NUL/],
    ['megabytes of empty objects', () => post('/Patient', `{"resourceType":"Patient","name":[${Array(400_000).fill('{}').join(',')}]}`), 413, /more than 50000 values/],
    ['a Bundle of 400,000 empty entries', () => post('', `{"resourceType":"Bundle","type":"batch","entry":[${Array(240_000).fill('{}').join(',')}]}`), 413, /more than 1000 entries/],
  ];
  it.each(cases)('%s', async (_name, send, status, text) => {
    const before = await snapshot();
    await expectRefused(await send(), status, text);
    expect(await snapshot()).toBe(before);
  });
});

describe('If-Match', () => {
  it.each(['garbage', 'W/"abc"', '*', 'W/"1", W/"2"', '"1" junk'])('a malformed If-Match %j is a 400 and nothing is updated', async (ifMatch) => {
    const before = await snapshot();
    const put = await request(t.app).put(`/fhir/Patient/${stored.id}`).auth(token, { type: 'bearer' }).set('If-Match', ifMatch).send({ ...stored, gender: 'other' });
    await expectRefused(put, 400, /If-Match must be one version ETag/);
    const patch = await request(t.app).patch(`/fhir/Patient/${stored.id}`).auth(token, { type: 'bearer' }).set('If-Match', ifMatch).type('application/json-patch+json').send([{ op: 'add', path: '/gender', value: 'other' }]);
    await expectRefused(patch, 400, /If-Match/);
    const del = await request(t.app).delete(`/fhir/Patient/${stored.id}`).auth(token, { type: 'bearer' }).set('If-Match', ifMatch);
    await expectRefused(del, 400, /If-Match/);
    expect(await snapshot()).toBe(before);
  });

  it('a malformed ifMatch in a Bundle entry fails the Bundle', async () => {
    const before = await snapshot();
    const res = await post('', { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { ...stored, gender: 'other' }, request: { method: 'PUT', url: `Patient/${stored.id}`, ifMatch: 'nonsense' } }] });
    await expectRefused(res, 400, /ifMatch must be one version ETag/);
    expect(res.body.issue[0].expression).toEqual(['Bundle.entry[0].request.ifMatch']);
    expect(await snapshot()).toBe(before);
  });
});

describe('Bundles', () => {
  const good = { resource: patient('Good'), request: { method: 'POST', url: 'Patient' } };
  it.each([
    ['an entry without request', { resource: patient() }, /Bundle.entry\[1\].request is required/],
    ['an entry that is a number', 1, /Bundle.entry\[1\] must be an object/],
    ['an entry that is null', null, /Bundle.entry\[1\] must be an object/],
    ['an unknown method', { request: { method: 'FOO', url: 'Patient' } }, /method must be GET, HEAD, POST, PUT, PATCH or DELETE/],
    ['a url that is an object', { request: { method: 'GET', url: {} } }, /request.url must be a string/],
    ['a POST without resource', { request: { method: 'POST', url: 'Patient' } }, /resource is required for POST/],
    ['a search with a prototype key', { request: { method: 'GET', url: 'Patient?__proto__=x' } }, /Unknown parameter "__proto__"/],
  ])('%s: 400, and no other entry is applied (batch or transaction)', async (_name, bad, text) => {
    for (const type of ['batch', 'transaction']) {
      const before = await snapshot();
      await expectRefused(await post('', { resourceType: 'Bundle', type, entry: [good, bad] }), 400, text);
      expect(await snapshot()).toBe(before);
    }
  });

  it('entry must be a list', async () => {
    await expectRefused(await post('', { resourceType: 'Bundle', type: 'batch', entry: null }), 400, /Bundle.entry must be an array/);
  });
});

describe('JSON Patch', () => {
  const patch = (ops: unknown) => request(t.app).patch(`/fhir/Patient/${stored.id}`).auth(token, { type: 'bearer' }).type('application/json-patch+json').send(ops as object);
  it.each([
    ['a path that is no JSON Pointer', [{ op: 'add', path: 'gender', value: 'x' }], /not a JSON Pointer/],
    ['an invalid escape', [{ op: 'add', path: '/name/~2', value: 'x' }], /not a JSON Pointer/],
    ['a path through __proto__', [{ op: 'add', path: '/__proto__/polluted', value: 'x' }], /names no FHIR element/],
    ['a path through constructor', [{ op: 'add', path: '/constructor/prototype/x', value: 'x' }], /names no FHIR element/],
    ['a move from nowhere', [{ op: 'move', from: 7, path: '/gender' }], /has from 7/],
    ['an unknown op', [{ op: 'frobnicate', path: '/gender' }], /expected one of add/],
    ['an add without value', [{ op: 'add', path: '/gender' }], /needs a value/],
    ['numbers for operations', [1, 2], /operation 0 is not an object/],
  ])('%s is a 400 and changes nothing', async (_name, ops, text) => {
    const before = await snapshot();
    await expectRefused(await patch(ops), 400, text);
    expect(await snapshot()).toBe(before);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('validation: what looks like an element but is not one', () => {
  it.each([
    ['__proto__', '{"resourceType":"Patient","__proto__":{"x":1}}', /Invalid additional property "__proto__"/],
    ['constructor', '{"resourceType":"Patient","constructor":{"x":1}}', /Invalid additional property "constructor"/],
    ['toString', '{"resourceType":"Patient","name":[{"toString":"x"}]}', /Invalid additional property "toString"/],
    ['_constructor', '{"resourceType":"Patient","_constructor":{}}', /Invalid additional property "_constructor"/],
    ['a contained __proto__', '{"resourceType":"Patient","contained":[{"resourceType":"__proto__"}]}', /Unknown resource type: __proto__/],
    ['a narrative with a script', '{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\\"http://www.w3.org/1999/xhtml\\"><script>alert(1)</script></div>"}}', /active content/],
    ['a narrative with an event handler', '{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\\"http://www.w3.org/1999/xhtml\\"><img src=\\"x\\" onerror=\\"alert(1)\\"/></div>"}}', /active content/],
    ['a profile that is an object', '{"resourceType":"Patient","meta":{"profile":[{}]}}', /profile must be a canonical URL/],
    ['a profile that is a string', '{"resourceType":"Patient","meta":{"profile":"x"}}', /Expected array/],
  ])('%s is refused on create and by $validate', async (_name, body, text) => {
    const before = await snapshot();
    await expectRefused(await post('/Patient', body), 400, text);
    expect(await snapshot()).toBe(before);
    const validated = await post('/Patient/$validate', body);
    expect(validated.status).toBe(200);
    expect(validated.body.issue.map((i: { details?: { text?: string } }) => i.details?.text).join("\n")).toMatch(text);
  });

  it('reports at most 100 issues for a resource with thousands of bad elements', async () => {
    const res = await post('/Patient', { resourceType: 'Patient', name: Array(5000).fill({ family: 1 }) });
    expect(res.status).toBe(400);
    expect(res.body.issue).toHaveLength(101);
    expect(res.body.issue[100].details.text).toBe('4900 more issues not listed');
  });
});

describe('money beyond the cap', () => {
  it('the cap is billing\'s MAX_AMOUNT', () => {
    expect(MAX_MONEY_VALUE).toBe(MAX_AMOUNT.toFixed(2));
  });

  it('a Money value over the cap is a 400 at write time; at the cap it is stored', async () => {
    const before = await snapshot();
    for (const value of [1e14, -1e14, 1e300, 10000000000000]) {
      const res = await post('/Claim', { ...claim(`Patient/${stored.id}`), total: { value, currency: 'USD' } });
      await expectRefused(res, 400, /beyond the limit of 9999999999999.99/);
      expect(res.body.issue[0].expression).toEqual(['Claim.total.value']);
    }
    expect(await snapshot()).toBe(before);
    const atCap = await post('/Claim', { ...claim(`Patient/${stored.id}`), total: { value: 9999999999999.99, currency: 'USD' } });
    expect(atCap.status).toBe(201);
  });
});

describe('a resourceType that is not a string', () => {
  it.each(['/Patient', '/Patient/$validate', '', `/Patient/x`])('POST/PUT %s is a 400', async (path) => {
    const body = '{"resourceType":{"toString":"x"},"name":[]}';
    await expectRefused(await post(path, body), 400, /resourceType must be a string/);
    await expectRefused(await request(t.app).put(`/fhir/Patient/${stored.id}`).auth(token, { type: 'bearer' }).type(FHIR).send(body), 400, /resourceType must be a string/);
  });
});

describe('operation bodies', () => {
  it.each([
    ['$validate', '/Patient/$validate'],
    ['$allocate', '/PatientCredit/x/$allocate'],
    ['$resend', '/Subscription/x/$resend'],
  ])('%s with parameters that are not objects with names is a 400', async (_name, path) => {
    await expectRefused(await post(path, { resourceType: 'Parameters', parameter: 'x' }), 400, /Parameters.parameter must be an array/);
    await expectRefused(await post(path, { resourceType: 'Parameters', parameter: [null] }), 400, /Parameters.parameter\[0\] must be an object/);
    await expectRefused(await post(path, { resourceType: 'Parameters', parameter: [{ name: 3 }] }), 400, /parameter\[0\].name must be a string/);
  });
});

describe('search controls the README says are refused', () => {
  const get = (query: string) => request(t.app).get(`/fhir/Patient?${query}`).auth(token, { type: 'bearer' });
  it.each([
    ['_summary=junk', /_summary takes true, false, text, data or count/],
    ['_total=junk', /_total takes none, estimate or accurate/],
    ['name:foo=x', /modifier :foo of name is not supported/],
    ['name:missing=maybe', /takes true or false/],
    ['name:iterate=x', /:iterate applies to _include and _revinclude only/],
    ['__proto__=x', /Unknown parameter "__proto__"/],
    ['toString=x', /Unknown parameter "toString"/],
    ['name:constructor=x', /Unknown parameter "name:constructor"/],
    ['_elements=__proto__', /_elements names an element that no resource has/],
    ['_revinclude=Patient:__proto__', /_revinclude names a parameter that no resource has/],
    ['_include=Patient:constructor', /_include names a parameter/],
    ['name=a%00b', /NUL character/],
  ])('%s is a 400', async (query, text) => {
    await expectRefused(await get(query), 400, text);
  });

  it.each(['_count=1e400', '_offset=99999999999999999999', '_count=-1', '_since=1', '_since=2024-02-30', '_since=275760-09-13', '_since=0000-01-01', '_at=2024-01-01T25:00:00Z'])('%s is a 400 in history', async (q) => {
    for (const path of [`/fhir/Patient/_history?${q}`, `/fhir/Patient/${stored.id}/_history?${q}`]) {
      await expectRefused(await request(t.app).get(path).auth(token, { type: 'bearer' }), 400, /must be a (non-negative integer|FHIR dateTime)/);
    }
  });

  it('history refuses parameters it does not take', async () => {
    for (const path of ['/fhir/Patient/_history?foo=1', `/fhir/Patient/${stored.id}/_history?_sort=x`]) {
      await expectRefused(await request(t.app).get(path).auth(token, { type: 'bearer' }), 400, /Unknown history parameter/);
    }
    expect((await request(t.app).get('/fhir/Patient/_history?_count=1&_since=2020-01-01').auth(token, { type: 'bearer' })).status).toBe(200);
  });

  it('the same in POST _search and in If-None-Exist', async () => {
    const form = await request(t.app).post('/fhir/Patient/_search').auth(token, { type: 'bearer' }).type('form').send('name:foo=x');
    await expectRefused(form, 400, /modifier :foo/);
    const before = await snapshot();
    const conditional = await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).set('If-None-Exist', 'name=%00').send(patient());
    await expectRefused(conditional, 400, /If-None-Exist: .*NUL/);
    const proto = await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).set('If-None-Exist', 'constructor=x').send(patient());
    await expectRefused(proto, 400, /Unknown parameter "constructor" in the If-None-Exist/);
    expect(await snapshot()).toBe(before);
  });
});
