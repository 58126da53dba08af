import { randomUUID } from 'node:crypto';
import express from 'express';
import { SignJWT, base64url, decodeJwt, generateKeyPair, importJWK } from 'jose';
import type { JWK } from 'jose';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rotateSigningKeys, webhookAuth } from '../../src/auth/index.ts';
import { retireSigningKey, selectActiveSigningKey } from '../../src/auth/store.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';

let t: TestApp;
let good: string;
beforeAll(async () => {
  t = await startTestApp();
  good = await t.token();
});
afterAll(() => t.close());

/** A token with our real signing key and chosen claims (for expired, not-yet-valid, wrong iss ...). */
async function signWithOurKey(claims: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  const row = (await selectActiveSigningKey(t.db))!;
  const key = await importJWK(JSON.parse(row.privateJwk) as JWK, 'ES256');
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ tenant: 'default', scope: 'system/*.cruds', ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: row.kid, typ: 'at+jwt', ...header })
    .setIssuer(String(claims.iss ?? t.auth.issuer))
    .setAudience(String(claims.aud ?? t.auth.issuer))
    .setSubject(String(claims.sub ?? decodeJwt(good).sub))
    .setJti(randomUUID())
    .setIssuedAt(Number(claims.iat ?? now))
    .setExpirationTime(Number(claims.exp ?? now + 600))
    .sign(key);
}

const unsigned = (header: object, payload: object): string =>
  `${base64url.encode(JSON.stringify(header))}.${base64url.encode(JSON.stringify(payload))}.`;

async function expect401(token: string | undefined, scheme = 'Bearer'): Promise<void> {
  const req = request(t.app).get('/fhir/Patient');
  if (token !== undefined) req.set('Authorization', `${scheme} ${token}`);
  const res = await req;
  expect(res.status).toBe(401);
  expect(res.headers['content-type']).toContain('application/fhir+json');
  expect(res.body.resourceType).toBe('OperationOutcome');
  expect(res.body.issue[0].code).toBe('login');
  expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="fhir-billing"/);
}

describe('every /fhir route but metadata needs a valid token (401 OperationOutcome)', () => {
  it('accepts a good token', async () => {
    expect((await request(t.app).get('/fhir/Patient').auth(good, { type: 'bearer' })).status).toBe(200);
  });

  it('missing token, other schemes, garbage', async () => {
    await expect401(undefined);
    await expect401(good, 'Basic');
    await expect401('not-a-jwt');
    await expect401('');
    for (const path of ['/fhir/Patient/x', '/fhir/Claim/_history', '/fhir/Patient/$validate', '/fhir']) {
      const res = await request(t.app).post(path).send({ resourceType: 'Bundle', type: 'batch' });
      expect(res.status).toBe(401);
    }
  });

  it('a forged signature (another key, same kid)', async () => {
    const row = (await selectActiveSigningKey(t.db))!;
    const { privateKey } = await generateKeyPair('ES256');
    const forged = await new SignJWT({ ...decodeJwt(good) })
      .setProtectedHeader({ alg: 'ES256', kid: row.kid, typ: 'at+jwt' })
      .sign(privateKey);
    await expect401(forged);
    // a valid token with one byte of its signature changed
    const tampered = good.slice(0, -4) + (good.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    await expect401(tampered);
    // a valid signature over a changed payload (another tenant)
    const [h, , s] = good.split('.');
    await expect401(`${h}.${base64url.encode(JSON.stringify({ ...decodeJwt(good), tenant: 'other' }))}.${s}`);
  });

  it('alg: none', async () => {
    const row = (await selectActiveSigningKey(t.db))!;
    await expect401(unsigned({ alg: 'none', kid: row.kid, typ: 'at+jwt' }, decodeJwt(good)));
    await expect401(unsigned({ alg: 'none' }, decodeJwt(good)));
  });

  it('HS256 signed with our public key, or with any secret', async () => {
    const row = (await selectActiveSigningKey(t.db))!;
    const publicJwkText = (await t.db.query<{ public_jwk: string }>('SELECT public_jwk FROM signing_key WHERE kid = $1', [row.kid]))[0].public_jwk;
    for (const secret of [new TextEncoder().encode(publicJwkText), new TextEncoder().encode('any-secret-at-all-32-bytes-long!')]) {
      const hs = await new SignJWT({ ...decodeJwt(good) }).setProtectedHeader({ alg: 'HS256', kid: row.kid, typ: 'at+jwt' }).sign(secret);
      await expect401(hs);
    }
  });

  it('expired, not yet valid, issued in the future', async () => {
    const now = Math.floor(Date.now() / 1000);
    await expect401(await signWithOurKey({ iat: now - 7200, exp: now - 60 }));
    await expect401(await signWithOurKey({ nbf: now + 600 }));
    await expect401(await signWithOurKey({ iat: now + 600, exp: now + 1200 }));
    // the same forms with sane times pass: the refusals above are for the times
    expect((await request(t.app).get('/fhir/Patient').auth(await signWithOurKey({}), { type: 'bearer' })).status).toBe(200);
  });

  it('another issuer or audience, a token of another type, an unknown kid', async () => {
    await expect401(await signWithOurKey({ iss: 'https://evil.example' }));
    await expect401(await signWithOurKey({ aud: 'https://other-api.example' }));
    await expect401(await signWithOurKey({}, { typ: 'JWT' }));
    const { privateKey } = await generateKeyPair('ES256');
    await expect401(await new SignJWT({ ...decodeJwt(good) }).setProtectedHeader({ alg: 'ES256', kid: randomUUID(), typ: 'at+jwt' }).sign(privateKey));
  });

  it('a tenant claim that is not the client\'s tenant', async () => {
    await expect401(await signWithOurKey({ tenant: 'someone-else' }));
  });

  it('a deleted client: its tokens stop working at once', async () => {
    const admin = await t.token('admin');
    const created = (await request(t.app).post('/admin/clients').auth(admin, { type: 'bearer' }).send({ tenant: 'default', name: 'short-lived' })).body;
    const token = (await request(t.app).post('/api/token').send({ clientId: created.clientId, clientSecret: created.clientSecret })).body.accessToken;
    expect((await request(t.app).get('/fhir/Patient').auth(token, { type: 'bearer' })).status).toBe(200);
    expect((await request(t.app).delete(`/admin/clients/${created.clientId}`).auth(admin, { type: 'bearer' })).status).toBe(204);
    await expect401(token);
    expect((await request(t.app).post('/api/token').send({ clientId: created.clientId, clientSecret: created.clientSecret })).status).toBe(401);
  });

  it('a rotated secret: the old secret and the tokens issued before stop working', async () => {
    const admin = await t.token('admin');
    const created = (await request(t.app).post('/admin/clients').auth(admin, { type: 'bearer' }).send({ tenant: 'default', name: 'rotating' })).body;
    const before = await signWithOurKey({ sub: created.clientId, iat: Math.floor(Date.now() / 1000) - 5 });
    expect((await request(t.app).get('/fhir/Patient').auth(before, { type: 'bearer' })).status).toBe(200);
    const rotated = await request(t.app).post(`/admin/clients/${created.clientId}/rotate-secret`).auth(admin, { type: 'bearer' });
    expect(rotated.status).toBe(200);
    expect(rotated.body.clientSecret).not.toBe(created.clientSecret);
    await expect401(before);
    expect((await request(t.app).post('/api/token').send({ clientId: created.clientId, clientSecret: created.clientSecret })).status).toBe(401);
    const fresh = await request(t.app).post('/api/token').send({ clientId: created.clientId, clientSecret: rotated.body.clientSecret });
    expect(fresh.status).toBe(200);
    expect((await request(t.app).get('/fhir/Patient').auth(fresh.body.accessToken, { type: 'bearer' })).status).toBe(200);
  });
});

describe('signing key rotation', () => {
  it('a new key signs; tokens of the old one verify until it retires; the JWKS lists both', async () => {
    const oldToken = await t.token();
    const oldKid = (await selectActiveSigningKey(t.db))!.kid;
    const newKid = await rotateSigningKeys(t.db, 3600);
    const newToken = await t.token();
    expect(JSON.parse(atob(newToken.split('.')[0].replace(/-/g, '+').replace(/_/g, '/'))).kid).toBe(newKid);
    const jwks = (await request(t.app).get('/.well-known/jwks.json')).body.keys.map((k: JWK) => k.kid);
    expect(jwks).toEqual(expect.arrayContaining([oldKid, newKid]));
    for (const token of [oldToken, newToken]) {
      expect((await request(t.app).get('/fhir/Patient').auth(token, { type: 'bearer' })).status).toBe(200);
    }
    expect(await retireSigningKey(t.db, oldKid)).toBe(true);
    await expect401(oldToken);
    expect((await request(t.app).get('/fhir/Patient').auth(newToken, { type: 'bearer' })).status).toBe(200);
    expect((await request(t.app).get('/.well-known/jwks.json')).body.keys.map((k: JWK) => k.kid)).not.toContain(oldKid);
  });
});

describe('the admin API needs the admin scope', () => {
  it('401 without a token, 403 {error} with a token lacking admin', async () => {
    const none = await request(t.app).get('/admin/clients');
    expect(none.status).toBe(401);
    expect(none.body.error).toBeDefined();
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    const fhirOnly = await t.token('system/*.cruds webhook');
    for (const [method, path] of [['get', '/admin/clients'], ['post', '/admin/clients'], ['post', '/admin/tenants'], ['delete', '/admin/clients/bootstrap'], ['post', '/admin/clients/bootstrap/rotate-secret']] as const) {
      const res = await request(t.app)[method](path).auth(fhirOnly, { type: 'bearer' }).send({ tenant: 'default', name: 'x', id: 'x' });
      expect(res.status).toBe(403);
      expect(res.body).toEqual({ error: 'The admin API needs the admin scope' });
    }
  });
});

describe('the webhook middleware (for /api/webhooks/patient-payment)', () => {
  const hook = () => {
    const app = express();
    app.post('/api/webhooks/patient-payment', webhookAuth({ db: t.db, settings: t.auth }), (_req, res) => {
      res.json({ success: true, tenant: res.locals.tenantId });
    });
    return app;
  };

  it('401 exactly {"error": "Invalid or expired access token"} for a missing, bad or expired token', async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const token of [undefined, 'garbage', await signWithOurKey({ iat: now - 7200, exp: now - 60 })]) {
      const req = request(hook()).post('/api/webhooks/patient-payment').send({ billId: '1' });
      if (token) req.auth(token, { type: 'bearer' });
      const res = await req;
      expect(res.status).toBe(401);
      expect(res.text).toBe('{"error":"Invalid or expired access token"}');
    }
  });

  it('the webhook scope or create on PaymentReconciliation lets it through; other scopes are 403', async () => {
    for (const scopes of ['webhook', 'system/PaymentReconciliation.c', 'system/*.write']) {
      const res = await request(hook()).post('/api/webhooks/patient-payment').auth(await t.token(scopes), { type: 'bearer' });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ success: true, tenant: 'default' });
    }
    const reader = await request(hook()).post('/api/webhooks/patient-payment').auth(await t.token('system/*.rs'), { type: 'bearer' });
    expect(reader.status).toBe(403);
    expect(reader.body.error).toMatch(/webhook/);
  });
});

describe('client secrets at rest', () => {
  it('are stored only as scrypt hashes', async () => {
    const rows = await t.db.query<{ secret_hash: string }>('SELECT secret_hash FROM api_client WHERE id = $1', [t.bootstrap.clientId]);
    expect(rows[0].secret_hash).toMatch(/^scrypt\$\d+\$8\$1\$/);
    expect(rows[0].secret_hash).not.toContain(t.bootstrap.clientSecret);
  });
});
