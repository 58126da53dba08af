import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.ts';
import { insertClient } from '../../src/auth/store.ts';
import { createLogger } from '../../src/logger.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';

/** SMART Backend Services: private_key_jwt client authentication at /oauth2/token. */
const HOST = 'billing.example';
/** As PUBLIC_BASE_URL=https://billing.example configures it. */
const TOKEN_ENDPOINT = `https://${HOST}/oauth2/token`;
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

let t: TestApp;
let admin: string;
let keys: { privateKey: CryptoKey; publicJwk: JWK };
let clientId: string;
let jwksServer: Server;
let jwksUrl: string;

async function keyPair(alg: string): Promise<{ privateKey: CryptoKey; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  return { privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid: randomUUID(), alg } };
}

function assertion(options: { sub?: string; iss?: string; aud?: string; exp?: number; jti?: string; key?: CryptoKey; kid?: string; alg?: string } = {}) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: options.alg ?? 'ES384', kid: options.kid ?? keys.publicJwk.kid, typ: 'JWT' })
    .setIssuer(options.iss ?? clientId)
    .setSubject(options.sub ?? clientId)
    .setAudience(options.aud ?? TOKEN_ENDPOINT)
    .setJti(options.jti ?? randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(options.exp ?? now + 240)
    .sign(options.key ?? keys.privateKey);
}

const tokenRequest = (app: TestApp['app'], clientAssertion: string, extra: Record<string, string> = {}) =>
  request(app)
    .post('/oauth2/token')
    .set('Host', HOST)
    .set('X-Forwarded-For', `192.0.2.${Math.floor(Math.random() * 250) + 1}`)
    .type('form')
    .send({ grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: clientAssertion, ...extra });

beforeAll(async () => {
  t = await startTestApp({ auth: { tokenEndpointUrl: TOKEN_ENDPOINT } });
  admin = await t.token('admin');
  keys = await keyPair('ES384');
  const created = await request(t.app).post('/admin/clients').auth(admin, { type: 'bearer' })
    .send({ tenant: 'default', name: 'backend service', scopes: ['system/Claim.rs', 'system/Patient.rs'], jwks: { keys: [keys.publicJwk] } });
  expect(created.status).toBe(201);
  clientId = created.body.clientId;

  jwksServer = createServer((_req, res) => {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ keys: [keys.publicJwk] }));
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(jwksServer.address() as { port: number }).port}/jwks.json`;
});
afterAll(async () => {
  await new Promise((resolve) => jwksServer.close(resolve));
  await t.close();
});

describe('private_key_jwt with an inline JWKS', () => {
  it('issues a token for the client\'s scopes (or fewer, when asked)', async () => {
    const res = await tokenRequest(t.app, await assertion());
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ token_type: 'Bearer', expires_in: 3600, scope: 'system/Claim.rs system/Patient.rs' });
    expect((await request(t.app).get('/fhir/Claim').auth(res.body.access_token, { type: 'bearer' })).status).toBe(200);
    const narrow = await tokenRequest(t.app, await assertion(), { scope: 'system/Claim.s' });
    expect(narrow.body.scope).toBe('system/Claim.s');
    const wider = await tokenRequest(t.app, await assertion(), { scope: 'system/Claim.c' });
    expect(wider.status).toBe(400);
    expect(wider.body.error).toBe('invalid_scope');
  });

  it('an assertion is used once: a replayed jti is refused', async () => {
    const once = await assertion();
    expect((await tokenRequest(t.app, once)).status).toBe(200);
    const again = await tokenRequest(t.app, once);
    expect(again.status).toBe(401);
    expect(again.body).toEqual({ error: 'invalid_client', error_description: expect.stringContaining('jti') });
    expect((await t.db.query('SELECT 1 FROM client_assertion_jti WHERE client_id = $1', [clientId])).length).toBeGreaterThan(0);
  });

  it('refuses a wrong audience, a far exp, iss other than sub, another key, HS256, an expired assertion', async () => {
    const now = Math.floor(Date.now() / 1000);
    const other = await keyPair('ES384');
    const cases: [string, string][] = [
      ['audience', await assertion({ aud: 'https://elsewhere.example/token' })],
      ['exp too far', await assertion({ exp: now + 3600 })],
      ['expired', await assertion({ exp: now - 60 })],
      ['iss != sub', await assertion({ iss: 'someone-else' })],
      ['another key', await assertion({ key: other.privateKey })],
      ['unknown client', await assertion({ sub: 'no-such-client', iss: 'no-such-client' })],
      ['HS256', await new SignJWT({}).setProtectedHeader({ alg: 'HS256', kid: keys.publicJwk.kid }).setIssuer(clientId).setSubject(clientId)
        .setAudience(TOKEN_ENDPOINT).setJti(randomUUID()).setExpirationTime('4m').sign(new TextEncoder().encode(JSON.stringify(keys.publicJwk)))],
      ['not a JWT', 'abc.def.ghi'],
    ];
    for (const [name, a] of cases) {
      const res = await tokenRequest(t.app, a);
      expect(res.status, name).toBe(401);
      expect(res.body.error, name).toBe('invalid_client');
    }
  });

  it('the audience comes from configuration, never from the Host header', async () => {
    // the issuer (TOKEN_ISSUER) is an accepted audience too
    expect((await tokenRequest(t.app, await assertion({ aud: t.auth.issuer }))).status).toBe(200);
    // a caller cannot make its own host the audience: an assertion minted for another server is refused
    const forged = await request(t.app).post('/oauth2/token').set('Host', 'attacker.example').type('form')
      .send({ grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion({ aud: 'http://attacker.example/oauth2/token' }) });
    expect(forged.status).toBe(401);
    expect(forged.body.error_description).toContain(`'${TOKEN_ENDPOINT}'`);
    // without PUBLIC_BASE_URL (no configured endpoint URL) the request's own host is no audience either
    const bare = createApp({ db: t.db, logger: createLogger('silent'), auth: { ...t.auth, tokenEndpointUrl: undefined } });
    const hostAud = await request(bare).post('/oauth2/token').set('Host', HOST).type('form')
      .send({ grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion({ aud: `http://${HOST}/oauth2/token` }) });
    expect(hostAud.status).toBe(401);
    expect(hostAud.body.error_description).toBe(`client_assertion aud must be '${t.auth.issuer}'`);
  });

  it('a client without registered keys cannot use an assertion', async () => {
    const plain = await request(t.app).post('/admin/clients').auth(admin, { type: 'bearer' }).send({ tenant: 'default', name: 'secret only' });
    const res = await tokenRequest(t.app, await assertion({ sub: plain.body.clientId, iss: plain.body.clientId }));
    expect(res.status).toBe(401);
    expect(res.body.error_description).toMatch(/no registered public keys/);
  });
});

describe('private_key_jwt with a jwksUrl', () => {
  it('fetches the keys when private networks are allowed (OUTBOUND_ALLOW_PRIVATE_NETWORKS=true)', async () => {
    const app = createApp({ db: t.db, logger: createLogger('silent'), auth: { ...t.auth, allowPrivateNetworks: true } });
    const created = await request(app).post('/admin/clients').auth(admin, { type: 'bearer' })
      .send({ tenant: 'default', name: 'remote keys', scopes: 'system/Claim.rs', jwksUrl });
    expect(created.status).toBe(201);
    const id = created.body.clientId;
    const res = await tokenRequest(app, await assertion({ sub: id, iss: id }));
    expect(res.status).toBe(200);
    expect(res.body.scope).toBe('system/Claim.rs');
  });

  it('never fetches from a private or loopback address by default', async () => {
    const id = `loopback-${randomUUID()}`;
    // registered before the setting changed (the API would refuse it now)
    await insertClient(t.db, { id, tenantId: 'default', name: 'loopback keys', secretHash: 'x', scopes: ['system/Claim.rs'], jwks: null, jwksUrl });
    const res = await tokenRequest(t.app, await assertion({ sub: id, iss: id }));
    expect(res.status).toBe(401);
    expect(res.body.error_description).toMatch(/private or loopback|https/);
    const refused = await request(t.app).post('/admin/clients').auth(admin, { type: 'bearer' }).send({ tenant: 'default', name: 'x', jwksUrl });
    expect(refused.status).toBe(400);
  });
});
