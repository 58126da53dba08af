import { decodeJwt, decodeProtectedHeader } from 'jose';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.ts';
import { ensureBootstrapClient } from '../../src/auth/index.ts';
import { createLogger } from '../../src/logger.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { patient } from '../support/fixtures.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const basic = (id: string, secret: string): string =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
/** Each test its own address, so the per-address failure limit of one test never touches another. */
let addressCounter = 0;
const nextAddress = (): string => `203.0.113.${++addressCounter}`;

describe('POST /api/token (the Cair contract)', () => {
  it('answers {accessToken, tokenType, expiresIn} and the token opens /fhir', async () => {
    const res = await request(t.app).post('/api/token').send(t.bootstrap);
    expect(res.status).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(['accessToken', 'expiresIn', 'tokenType']);
    expect(res.body.tokenType).toBe('Bearer');
    expect(res.body.expiresIn).toBe(3600);
    expect(res.headers['cache-control']).toBe('no-store');

    const created = await request(t.app).post('/fhir/Patient').auth(res.body.accessToken, { type: 'bearer' }).send(patient('Token'));
    expect(created.status).toBe(201);
  });

  it('issues an ES256 JWT with iss, aud, sub, tenant, scope, jti, iat and exp', async () => {
    const { accessToken } = (await request(t.app).post('/api/token').send(t.bootstrap)).body;
    const header = decodeProtectedHeader(accessToken);
    expect(header).toMatchObject({ alg: 'ES256', typ: 'at+jwt' });
    expect(typeof header.kid).toBe('string');
    const claims = decodeJwt(accessToken);
    expect(claims).toMatchObject({ iss: 'fhir-billing', aud: 'fhir-billing', sub: 'bootstrap', tenant: 'default' });
    expect(claims.scope).toBe('system/*.cruds webhook admin');
    expect(typeof claims.jti).toBe('string');
    expect(claims.exp! - claims.iat!).toBe(3600);
  });

  it('a wrong secret or an unknown client is 401 {error}', async () => {
    const address = nextAddress();
    const wrong = await request(t.app).post('/api/token').set('X-Forwarded-For', address).send({ ...t.bootstrap, clientSecret: 'not-the-secret' });
    expect(wrong.status).toBe(401);
    expect(wrong.body).toEqual({ error: 'Invalid client credentials' });
    const unknown = await request(t.app).post('/api/token').set('X-Forwarded-For', address).send({ clientId: 'nobody', clientSecret: 'x' });
    expect(unknown.status).toBe(401);
    expect(unknown.body).toEqual({ error: 'Invalid client credentials' });
  });

  it('a malformed body is 400 {error, details}', async () => {
    const missing = await request(t.app).post('/api/token').send({ clientId: 'bootstrap' });
    expect(missing.status).toBe(400);
    expect(missing.body.error).toBe('Invalid request body');
    expect(missing.body.details[0].path).toEqual(['clientSecret']);
    const broken = await request(t.app).post('/api/token').set('Content-Type', 'application/json').send('{"clientId":');
    expect(broken.status).toBe(400);
    expect(broken.body).toEqual({ error: 'Invalid request body' });
    const notJson = await request(t.app).post('/api/token').type('form').send({ clientId: 'a', clientSecret: 'b' });
    expect(notJson.status).toBe(400);
  });
});

describe('POST /oauth2/token (RFC 6749 client credentials)', () => {
  const form = (fields: Record<string, string>) => request(t.app).post('/oauth2/token').type('form').send(fields);

  it('client_secret_basic: {access_token, token_type, expires_in, scope}', async () => {
    const res = await request(t.app)
      .post('/oauth2/token')
      .set('Authorization', basic(t.bootstrap.clientId, t.bootstrap.clientSecret))
      .type('form')
      .send({ grant_type: 'client_credentials' });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ access_token: expect.any(String), token_type: 'Bearer', expires_in: 3600, scope: 'system/*.cruds webhook admin' });
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers.pragma).toBe('no-cache');
  });

  it('client_secret_basic accepts secrets sent raw (as curl -u does) or form-encoded', async () => {
    const secret = 'a+b%c/d=e:f 0123456789';
    await ensureBootstrapClient(t.db, t.auth, { tenant: 'default', clientId: 'odd-secret', clientSecret: secret });
    const raw = `Basic ${Buffer.from(`odd-secret:${secret}`).toString('base64')}`;
    for (const authorization of [raw, basic('odd-secret', secret)]) {
      const res = await request(t.app).post('/oauth2/token').set('Authorization', authorization).type('form').send({ grant_type: 'client_credentials' });
      expect(res.status, authorization).toBe(200);
    }
  });

  it('client_secret_post, with a narrower scope: the token carries just that', async () => {
    const res = await form({
      grant_type: 'client_credentials',
      client_id: t.bootstrap.clientId,
      client_secret: t.bootstrap.clientSecret,
      scope: 'system/Patient.rs system/Claim.read',
    });
    expect(res.status).toBe(200);
    expect(res.body.scope).toBe('system/Patient.rs system/Claim.read');
    const token = res.body.access_token;
    expect((await request(t.app).get('/fhir/Patient').auth(token, { type: 'bearer' })).status).toBe(200);
    expect((await request(t.app).post('/fhir/Patient').auth(token, { type: 'bearer' }).send(patient())).status).toBe(403);
    expect((await request(t.app).get('/admin/clients').auth(token, { type: 'bearer' })).status).toBe(403);
  });

  it('a scope the client was not granted is invalid_scope (400), an unknown one too', async () => {
    const narrow = await request(t.app).post('/admin/clients').auth(await t.token('admin'), { type: 'bearer' })
      .send({ tenant: 'default', name: 'reader', scopes: ['system/Claim.rs'] });
    expect(narrow.status).toBe(201);
    const { clientId, clientSecret } = narrow.body;
    const notGranted = await form({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret, scope: 'system/Claim.c' });
    expect(notGranted.status).toBe(400);
    expect(notGranted.body).toEqual({ error: 'invalid_scope', error_description: expect.stringContaining('system/Claim.c') });
    const unknown = await form({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret, scope: 'patient/*.read' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error).toBe('invalid_scope');
    const within = await form({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret, scope: 'system/Claim.s' });
    expect(within.status).toBe(200);
  });

  it('errors: invalid_client 401 (with WWW-Authenticate for Basic), invalid_request and unsupported_grant_type 400', async () => {
    const address = nextAddress();
    const badBasic = await request(t.app)
      .post('/oauth2/token')
      .set('X-Forwarded-For', address)
      .set('Authorization', basic(t.bootstrap.clientId, 'wrong'))
      .type('form')
      .send({ grant_type: 'client_credentials' });
    expect(badBasic.status).toBe(401);
    expect(badBasic.body).toEqual({ error: 'invalid_client', error_description: 'Invalid client credentials' });
    expect(badBasic.headers['www-authenticate']).toMatch(/^Basic/);

    const badPost = await form({ grant_type: 'client_credentials', client_id: 'bootstrap', client_secret: 'wrong' }).set('X-Forwarded-For', address);
    expect(badPost.status).toBe(401);
    expect(badPost.body.error).toBe('invalid_client');

    const none = await form({ grant_type: 'client_credentials' });
    expect(none.status).toBe(401);
    expect(none.body.error).toBe('invalid_client');

    const noGrant = await form({ client_id: 'bootstrap', client_secret: t.bootstrap.clientSecret });
    expect(noGrant.status).toBe(400);
    expect(noGrant.body.error).toBe('invalid_request');

    const password = await form({ grant_type: 'password', client_id: 'bootstrap', client_secret: t.bootstrap.clientSecret });
    expect(password.status).toBe(400);
    expect(password.body.error).toBe('unsupported_grant_type');

    const twoMethods = await request(t.app)
      .post('/oauth2/token')
      .set('Authorization', basic(t.bootstrap.clientId, t.bootstrap.clientSecret))
      .type('form')
      .send({ grant_type: 'client_credentials', client_id: 'bootstrap', client_secret: t.bootstrap.clientSecret });
    expect(twoMethods.status).toBe(400);
    expect(twoMethods.body.error).toBe('invalid_request');

    const repeated = await request(t.app).post('/oauth2/token').type('form').send('grant_type=client_credentials&grant_type=client_credentials');
    expect(repeated.status).toBe(400);
    expect(repeated.body.error).toBe('invalid_request');

    const wrongType = await form({ grant_type: 'client_credentials', client_assertion_type: 'urn:other', client_assertion: 'x.y.z' });
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.error).toBe('invalid_request');
  });
});

describe('failed token requests are rate-limited', () => {
  it('per client: after 10 failures even the right secret is refused with 429 and Retry-After', async () => {
    const created = await request(t.app).post('/admin/clients').auth(await t.token('admin'), { type: 'bearer' }).send({ tenant: 'default', name: 'victim' });
    const { clientId, clientSecret } = created.body;
    for (let i = 0; i < 10; i++) {
      // a different address each time: this is the per-client limit, not the per-address one
      const res = await request(t.app).post('/api/token').set('X-Forwarded-For', nextAddress()).send({ clientId, clientSecret: `guess-${i}` });
      expect(res.status).toBe(401);
    }
    const blocked = await request(t.app).post('/api/token').set('X-Forwarded-For', nextAddress()).send({ clientId, clientSecret });
    expect(blocked.status).toBe(429);
    expect(blocked.body.error).toMatch(/Too many failed token requests/);
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
    const oauth = await request(t.app).post('/oauth2/token').set('X-Forwarded-For', nextAddress()).type('form')
      .send({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret });
    expect(oauth.status).toBe(429);
    expect(oauth.body.error).toBe('temporarily_unavailable');
    // other clients are unaffected
    expect((await request(t.app).post('/api/token').send(t.bootstrap)).status).toBe(200);
  });

  it('per address: failures from one address block it for every client, in every process', async () => {
    const settings = { ...t.auth, failuresPerAddress: 3 };
    const app = createApp({ db: t.db, logger: createLogger('silent'), auth: settings });
    const from = (r: request.Test) => r.set('X-Forwarded-For', '198.51.100.7');
    for (const id of ['a', 'b', 'c']) {
      expect((await from(request(app).post('/api/token')).send({ clientId: id, clientSecret: 'x' })).status).toBe(401);
    }
    expect((await from(request(app).post('/api/token')).send(t.bootstrap)).status).toBe(429);
    // the count lives in the database: another server process on it refuses the address as well
    const other = createApp({ db: t.db, logger: createLogger('silent'), auth: settings });
    expect((await from(request(other).post('/api/token')).send(t.bootstrap)).status).toBe(429);
    // other addresses are unaffected
    expect((await request(other).post('/api/token').set('X-Forwarded-For', '198.51.100.8').send(t.bootstrap)).status).toBe(200);
  });
});

describe('discovery', () => {
  it('GET /.well-known/jwks.json lists the public keys, without private parts', async () => {
    const res = await request(t.app).get('/.well-known/jwks.json');
    expect(res.status).toBe(200);
    expect(res.body.keys.length).toBeGreaterThanOrEqual(1);
    for (const key of res.body.keys) {
      expect(key).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
      expect(key.d).toBeUndefined();
    }
  });

  it('GET /fhir/.well-known/smart-configuration describes the token endpoint', async () => {
    const res = await request(t.app).get('/fhir/.well-known/smart-configuration').set('Host', 'billing.example');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      token_endpoint: 'http://billing.example/oauth2/token',
      grant_types_supported: ['client_credentials'],
      token_endpoint_auth_methods_supported: expect.arrayContaining(['client_secret_basic', 'client_secret_post', 'private_key_jwt']),
      token_endpoint_auth_signing_alg_values_supported: expect.arrayContaining(['RS384', 'ES384']),
      capabilities: expect.arrayContaining(['client-confidential-asymmetric', 'permission-v2']),
    });
  });

  it('/fhir/metadata and /healthz need no token', async () => {
    expect((await request(t.app).get('/fhir/metadata')).status).toBe(200);
    expect((await request(t.app).get('/healthz')).status).toBe(200);
  });
});
