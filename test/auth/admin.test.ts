import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';

let t: TestApp;
let admin: string;
beforeAll(async () => {
  t = await startTestApp();
  admin = await t.token('admin');
});
afterAll(() => t.close());

const post = (path: string, body: unknown) => request(t.app).post(path).auth(admin, { type: 'bearer' }).send(body as object);

describe('POST /admin/tenants', () => {
  it('creates a tenant; a duplicate is 409; a bad id is 400', async () => {
    const res = await post('/admin/tenants', { id: 'acme-clinic', name: 'Acme Clinic' });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ id: 'acme-clinic', name: 'Acme Clinic', currency: 'USD' });
    expect((await post('/admin/tenants', { id: 'acme-clinic', name: 'Again' })).status).toBe(409);
    const bad = await post('/admin/tenants', { id: 'Not A Slug', name: 'x' });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/^Invalid request body: id:/);
    expect((await post('/admin/tenants', { id: 'no-name' })).status).toBe(400);
    const malformed = await request(t.app).post('/admin/tenants').auth(admin, { type: 'bearer' }).set('Content-Type', 'application/json').send('{');
    expect(malformed.status).toBe(400);
    expect(malformed.body.error).toMatch(/malformed JSON/);
  });
});

describe('/admin/clients', () => {
  it('create shows the secret once; list never shows it; the client gets tokens with its scopes', async () => {
    await post('/admin/tenants', { id: 'payer-one', name: 'Payer One' }).expect(201);
    const created = await post('/admin/clients', { tenant: 'payer-one', name: 'claims feed', scopes: ['system/Claim.rs', 'webhook'] });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({ clientId: expect.any(String), clientSecret: expect.any(String), tenant: 'payer-one', scopes: ['system/Claim.rs', 'webhook'] });
    expect(created.headers['cache-control']).toBe('no-store');
    expect(created.body.clientSecret.length).toBeGreaterThanOrEqual(43);

    const list = await request(t.app).get('/admin/clients?tenant=payer-one').auth(admin, { type: 'bearer' });
    expect(list.status).toBe(200);
    expect(list.body.clients).toEqual([
      { clientId: created.body.clientId, tenant: 'payer-one', name: 'claims feed', scopes: ['system/Claim.rs', 'webhook'], createdAt: expect.any(String) },
    ]);
    expect(JSON.stringify(list.body)).not.toContain(created.body.clientSecret);
    const everyone = await request(t.app).get('/admin/clients').auth(admin, { type: 'bearer' });
    expect(everyone.body.clients.map((c: any) => c.tenant)).toEqual(expect.arrayContaining(['default', 'payer-one']));

    const token = await request(t.app).post('/oauth2/token').type('form')
      .send({ grant_type: 'client_credentials', client_id: created.body.clientId, client_secret: created.body.clientSecret });
    expect(token.body.scope).toBe('system/Claim.rs webhook');
  });

  it('default scopes are every FHIR interaction (no admin, no webhook)', async () => {
    const created = await post('/admin/clients', { tenant: 'default', name: 'defaults' });
    expect(created.body.scopes).toEqual(['system/*.cruds']);
  });

  it('refuses an unknown tenant (404), unknown scopes, private keys in jwks, jwks with jwksUrl, a private jwksUrl (400)', async () => {
    expect((await post('/admin/clients', { tenant: 'nowhere', name: 'x' })).status).toBe(404);
    const scope = await post('/admin/clients', { tenant: 'default', name: 'x', scopes: ['patient/*.read'] });
    expect(scope.status).toBe(400);
    expect(scope.body.error).toContain('patient/*.read');
    const privateKey = await post('/admin/clients', { tenant: 'default', name: 'x', jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'a', y: 'b', d: 'secret' }] } });
    expect(privateKey.status).toBe(400);
    expect(privateKey.body.error).toContain('public keys only');
    const symmetric = await post('/admin/clients', { tenant: 'default', name: 'x', jwks: { keys: [{ kty: 'oct', k: 'abc' }] } });
    expect(symmetric.status).toBe(400);
    const both = await post('/admin/clients', { tenant: 'default', name: 'x', jwks: { keys: [{ kty: 'EC' }] }, jwksUrl: 'https://keys.example/jwks' });
    expect(both.status).toBe(400);
    for (const url of ['http://keys.example/jwks', 'https://127.0.0.1/jwks', 'https://10.1.2.3/jwks', 'https://[::1]/jwks', 'https://localhost/jwks', 'https://169.254.169.254/latest']) {
      const res = await post('/admin/clients', { tenant: 'default', name: 'x', jwksUrl: url });
      expect(res.status, url).toBe(400);
    }
    expect((await post('/admin/clients', { tenant: 'default', name: 'x', jwksUrl: 'https://keys.example/jwks' })).status).toBe(201);
  });

  it('delete is 204 then 404; rotate-secret of an unknown client is 404; unknown admin routes are 404 {error}', async () => {
    const created = await post('/admin/clients', { tenant: 'default', name: 'temp' });
    const del = () => request(t.app).delete(`/admin/clients/${created.body.clientId}`).auth(admin, { type: 'bearer' });
    expect((await del()).status).toBe(204);
    expect((await del()).status).toBe(404);
    expect((await request(t.app).post(`/admin/clients/${created.body.clientId}/rotate-secret`).auth(admin, { type: 'bearer' })).status).toBe(404);
    const list = await request(t.app).get('/admin/clients?tenant=default').auth(admin, { type: 'bearer' });
    expect(list.body.clients.map((c: any) => c.clientId)).not.toContain(created.body.clientId);
    const unknown = await request(t.app).get('/admin/nothing').auth(admin, { type: 'bearer' });
    expect(unknown.status).toBe(404);
    expect(unknown.body).toEqual({ error: 'Not found' });
  });
});

describe('the bootstrap client', () => {
  it('holds every scope plus admin, and a changed BOOTSTRAP_CLIENT_SECRET replaces the old one', async () => {
    const { ensureBootstrapClient } = await import('../../src/auth/index.ts');
    const list = await request(t.app).get('/admin/clients?tenant=default').auth(admin, { type: 'bearer' });
    expect(list.body.clients.find((c: any) => c.clientId === 'bootstrap').scopes).toEqual(['system/*.cruds', 'webhook', 'admin']);
    const hashBefore = (await t.db.query<{ h: string }>("SELECT secret_hash AS h FROM api_client WHERE id = 'bootstrap'"))[0].h;
    await ensureBootstrapClient(t.db, t.auth, { tenant: 'default', ...t.bootstrap });
    const hashSame = (await t.db.query<{ h: string }>("SELECT secret_hash AS h FROM api_client WHERE id = 'bootstrap'"))[0].h;
    expect(hashSame).toBe(hashBefore); // same secret: not re-hashed

    await ensureBootstrapClient(t.db, t.auth, { tenant: 'default', clientId: 'bootstrap', clientSecret: 'a-brand-new-secret-value' });
    expect((await request(t.app).post('/api/token').send(t.bootstrap)).status).toBe(401);
    expect((await request(t.app).post('/api/token').send({ clientId: 'bootstrap', clientSecret: 'a-brand-new-secret-value' })).status).toBe(200);
    await ensureBootstrapClient(t.db, t.auth, { tenant: 'default', ...t.bootstrap });
  });
});
