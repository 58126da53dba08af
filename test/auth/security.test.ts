import { decodeJwt } from 'jose';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.ts';
import { ensureBootstrapClient } from '../../src/auth/index.ts';
import { createLogger } from '../../src/logger.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';

/** The token endpoint's defences against racing it: the failure limit and secret rotation. */
let t: TestApp;
let admin: string;
beforeAll(async () => {
  t = await startTestApp();
  admin = await t.token('admin');
});
afterAll(() => t.close());

const newClient = async (name: string): Promise<{ clientId: string; clientSecret: string }> =>
  (await request(t.app).post('/admin/clients').auth(admin, { type: 'bearer' }).send({ tenant: 'default', name })).body;

let addressCounter = 0;
const nextAddress = (): string => `192.0.2.${++addressCounter}`;

describe('the failure limit cannot be raced', () => {
  it('of many concurrent wrong secrets for one client, only the limit is evaluated', async () => {
    const limit = 5;
    const app = createApp({ db: t.db, logger: createLogger('silent'), auth: { ...t.auth, failuresPerClient: limit } });
    const { clientId, clientSecret } = await newClient('raced');
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        request(app).post('/api/token').set('X-Forwarded-For', nextAddress()).send({ clientId, clientSecret: `wrong-${i}` }),
      ),
    );
    const statuses = answers.map((r) => r.status);
    expect(statuses.filter((s) => s !== 429)).toEqual(Array(limit).fill(401));
    // the limit now holds for the right secret too, on every endpoint
    expect((await request(app).post('/api/token').set('X-Forwarded-For', nextAddress()).send({ clientId, clientSecret })).status).toBe(429);
  });

  it('the same for one address trying many clients at once', async () => {
    const limit = 4;
    const app = createApp({ db: t.db, logger: createLogger('silent'), auth: { ...t.auth, failuresPerAddress: limit } });
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        request(app).post('/oauth2/token').set('X-Forwarded-For', '198.51.100.99').type('form')
          .send({ grant_type: 'client_credentials', client_id: `nobody-${i}`, client_secret: 'x' }),
      ),
    );
    expect(answers.filter((r) => r.status !== 429).map((r) => r.status)).toEqual(Array(limit).fill(401));
    expect(answers.filter((r) => r.status === 429).every((r) => r.body.error === 'temporarily_unavailable')).toBe(true);
  });

  it('successes give their point back: many good requests never lock a client out', async () => {
    const app = createApp({ db: t.db, logger: createLogger('silent'), auth: { ...t.auth, failuresPerClient: 2 } });
    const { clientId, clientSecret } = await newClient('busy');
    const answers = await Promise.all(
      Array.from({ length: 6 }, () => request(app).post('/api/token').set('X-Forwarded-For', nextAddress()).send({ clientId, clientSecret })),
    );
    // at most 2 are in flight against the limit at once; none failed, so later ones pass
    expect(answers.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(2);
    expect((await request(app).post('/api/token').set('X-Forwarded-For', nextAddress()).send({ clientId, clientSecret })).status).toBe(200);
    const wrong = await request(app).post('/api/token').set('X-Forwarded-For', nextAddress()).send({ clientId, clientSecret: 'nope' });
    expect(wrong.status).toBe(401);
  });
});

describe('secret rotation revokes every token issued before it', () => {
  const fhir = (token: string) => request(t.app).get('/fhir/Patient').auth(token, { type: 'bearer' });
  const tokenFor = async (clientId: string, clientSecret: string): Promise<string> => {
    const res = await request(t.app).post('/api/token').set('X-Forwarded-For', nextAddress()).send({ clientId, clientSecret });
    expect(res.status).toBe(200);
    return res.body.accessToken;
  };

  it('a token issued in the same second as the rotation is refused; one issued after works', async () => {
    const { clientId, clientSecret } = await newClient('rotates at once');
    const old = await tokenFor(clientId, clientSecret);
    expect((await fhir(old)).status).toBe(200);
    const rotated = await request(t.app).post(`/admin/clients/${clientId}/rotate-secret`).auth(admin, { type: 'bearer' });
    expect(rotated.status).toBe(200);
    const fresh = await tokenFor(clientId, rotated.body.clientSecret);
    // the point of the test: both tokens carry the same whole second as iat, as rotation's
    expect(decodeJwt(fresh).iat! - decodeJwt(old).iat!).toBeLessThanOrEqual(1);
    const refused = await fhir(old);
    expect(refused.status).toBe(401);
    expect(refused.body.issue[0].details.text).toMatch(/rotated/);
    expect((await fhir(fresh)).status).toBe(200);
    // and a second rotation revokes the fresh one in its turn
    await request(t.app).post(`/admin/clients/${clientId}/rotate-secret`).auth(admin, { type: 'bearer' });
    expect((await fhir(fresh)).status).toBe(401);
  });

  it('a changed BOOTSTRAP_CLIENT_SECRET revokes the bootstrap tokens too; an unchanged one does not', async () => {
    const old = await tokenFor(t.bootstrap.clientId, t.bootstrap.clientSecret);
    await ensureBootstrapClient(t.db, t.auth, { tenant: 'default', ...t.bootstrap });
    expect((await fhir(old)).status).toBe(200);
    await ensureBootstrapClient(t.db, t.auth, { tenant: 'default', clientId: t.bootstrap.clientId, clientSecret: 'another-bootstrap-secret' });
    expect((await fhir(old)).status).toBe(401);
    await ensureBootstrapClient(t.db, t.auth, { tenant: 'default', ...t.bootstrap });
    expect((await fhir(await tokenFor(t.bootstrap.clientId, t.bootstrap.clientSecret))).status).toBe(200);
  });
});

describe('a conditional create that matches', () => {
  const IDENTIFIER = { system: 'urn:example:mrn', value: `mrn-${Date.now()}` };
  const patient = { resourceType: 'Patient', identifier: [IDENTIFIER], name: [{ family: 'Hidden' }] };
  const ifNoneExist = `identifier=${IDENTIFIER.system}|${IDENTIFIER.value}`;

  it('returns the existing resource only to a client that may read it', async () => {
    const full = await t.token('system/Patient.cruds');
    const first = await request(t.app).post('/fhir/Patient').auth(full, { type: 'bearer' }).set('If-None-Exist', ifNoneExist).send(patient);
    expect(first.status).toBe(201);
    const again = await request(t.app).post('/fhir/Patient').auth(full, { type: 'bearer' }).set('If-None-Exist', ifNoneExist).send(patient);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);

    // create and search, but no read: 200 with an OperationOutcome, no resource, no id, nothing created
    const noRead = await t.token('system/Patient.cs');
    const blind = await request(t.app).post('/fhir/Patient').auth(noRead, { type: 'bearer' }).set('If-None-Exist', ifNoneExist).send(patient);
    expect(blind.status).toBe(200);
    expect(blind.body.resourceType).toBe('OperationOutcome');
    expect(blind.body.issue[0]).toMatchObject({ severity: 'information', code: 'informational' });
    expect(blind.body.issue[0].details.text).toMatch(/needs system\/Patient\.r/);
    expect(JSON.stringify(blind.body)).not.toContain(first.body.id);
    expect(blind.headers.location).toBeUndefined();
    expect(blind.headers.etag).toBeUndefined();
    const count = await request(t.app).get(`/fhir/Patient?${ifNoneExist}&_summary=count`).auth(full, { type: 'bearer' });
    expect(count.body.total).toBe(1);

    // the same in a batch entry
    const batch = await request(t.app).post('/fhir').auth(noRead, { type: 'bearer' }).send({
      resourceType: 'Bundle', type: 'batch',
      entry: [{ resource: patient, request: { method: 'POST', url: 'Patient', ifNoneExist } }],
    });
    expect(batch.status).toBe(200);
    expect(batch.body.entry[0].response.status).toMatch(/^200/);
    expect(batch.body.entry[0].resource).toBeUndefined();
    expect(JSON.stringify(batch.body)).not.toContain('Hidden');

    // no match: it creates as usual, and the creator sees what it created
    const other = await request(t.app).post('/fhir/Patient').auth(noRead, { type: 'bearer' })
      .set('If-None-Exist', 'identifier=urn:example:mrn|nobody-has-this').send({ ...patient, identifier: [{ system: 'urn:example:mrn', value: 'nobody-has-this' }] });
    expect(other.status).toBe(201);
  });
});
