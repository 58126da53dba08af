import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../src/cli/commands.ts';
import { loadConfig } from '../../src/config.ts';
import { listEvents } from '../../src/inbound/index.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { client, expectBooksBalanced } from '../support/billing.ts';
import { post, registerSource, sale } from '../support/instamed.ts';

/** The webhook-source registry (/admin/webhook-sources) and how a source authenticates its sender. */
let t: TestApp;
let admin: string;
beforeAll(async () => {
  t = await startTestApp();
  admin = await t.token('admin');
});
afterAll(() => t.close());

const adminReq = (method: 'get' | 'post' | 'patch' | 'delete', path: string, token = admin) => request(t.app)[method](path).auth(token, { type: 'bearer' });

describe('a tenant\'s client manages its own tenant\'s sources', () => {
  it('registers, lists, patches, rotates and deletes its own; 403 naming another tenant; 404 for another tenant\'s ids', async () => {
    const own = await t.token('system/*.cruds', 'clinic-a');
    const other = await adminReq('post', '/admin/webhook-sources').send({ tenant: 'default', kind: 'instamed', name: 'Not clinic-a\'s' });
    expect(other.status).toBe(201);

    // No tenant named: its own. Credentials shown once, stored hashed.
    const created = await adminReq('post', '/admin/webhook-sources', own).send({ kind: 'instamed', name: 'Clinic A desk' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.headers['cache-control']).toBe('no-store');
    expect(created.body).toMatchObject({ tenant: 'clinic-a', kind: 'instamed', name: 'Clinic A desk', credentials: { username: expect.any(String), password: expect.any(String) } });
    const [row] = await t.db.query<{ secret_hash: string; tenant_id: string }>('SELECT secret_hash, tenant_id FROM webhook_source WHERE id = $1', [created.body.id]);
    expect(row).toMatchObject({ tenant_id: 'clinic-a', secret_hash: expect.stringMatching(/^scrypt\$/) });
    expect(JSON.stringify(row)).not.toContain(created.body.credentials.password);
    // Naming itself is the same; naming another tenant is refused and registers nothing.
    expect((await adminReq('post', '/admin/webhook-sources', own).send({ tenant: 'clinic-a', kind: 'x12-835', name: 'Clearinghouse' })).status).toBe(201);
    const foreign = await adminReq('post', '/admin/webhook-sources', own).send({ tenant: 'default', kind: 'instamed', name: 'Sneaky' });
    expect(foreign.status).toBe(403);
    expect(foreign.body.error).toMatch(/own tenant \(clinic-a\)/);
    expect(await t.db.query('SELECT id FROM webhook_source WHERE name = $1', ['Sneaky'])).toEqual([]);

    const list = await adminReq('get', '/admin/webhook-sources', own);
    expect(list.body.sources.map((s: { tenant: string }) => s.tenant)).toEqual(['clinic-a', 'clinic-a']);
    expect(list.body.sources.some((s: { credentials?: unknown }) => s.credentials)).toBe(false);

    // Its own: patch, rotate (the old password stops), disable, delete.
    const id = created.body.id;
    expect((await adminReq('patch', `/admin/webhook-sources/${id}`, own).send({ name: 'Renamed' })).body).toMatchObject({ name: 'Renamed' });
    const rotated = await adminReq('post', `/admin/webhook-sources/${id}/rotate-credentials`, own);
    expect(rotated.status).toBe(200);
    expect(rotated.body.credentials.password).not.toBe(created.body.credentials.password);
    expect((await request(t.app).post(created.body.url).auth(created.body.credentials.username, created.body.credentials.password).send({})).status).toBe(401);
    expect((await adminReq('patch', `/admin/webhook-sources/${id}`, own).send({ enabled: false })).body).toMatchObject({ enabled: false });
    expect((await adminReq('patch', `/admin/webhook-sources/${id}`, own).send({ tenant: 'default' })).status).toBe(400);

    // Another tenant's: not found, and unchanged.
    for (const [method, path] of [['get', ''], ['patch', ''], ['delete', ''], ['post', '/rotate-credentials']] as const) {
      const res = await adminReq(method, `/admin/webhook-sources/${other.body.id}${path}`, own).send({ name: 'Taken' });
      expect(res.status, `${method} ${path}`).toBe(404);
    }
    expect((await adminReq('get', `/admin/webhook-sources/${other.body.id}`)).body).toMatchObject({ name: 'Not clinic-a\'s', enabled: true });
    const [still] = await t.db.query<{ secret_hash: string }>('SELECT secret_hash FROM webhook_source WHERE id = $1', [other.body.id]);
    expect(still.secret_hash).toMatch(/^scrypt\$/);

    // Read-only clients of the tenant may not change its sources.
    const readOnly = await t.token('system/*.rs', 'clinic-a');
    expect((await adminReq('patch', `/admin/webhook-sources/${id}`, readOnly).send({ enabled: true })).status).toBe(403);
    expect((await adminReq('delete', `/admin/webhook-sources/${id}`, readOnly)).status).toBe(403);
    expect((await adminReq('delete', `/admin/webhook-sources/${id}`, own)).body).toEqual({ deleted: id });
    expect((await adminReq('get', '/admin/webhook-sources', own)).body.sources).toHaveLength(1);
  });
});

describe('registry', () => {
  it('registers a source: 201 with its url and Basic credentials shown once, stored hashed', async () => {
    const res = await adminReq('post', '/admin/webhook-sources').send({ tenant: 'default', kind: 'instamed', name: 'Front desk', allowedIps: ['216.177.67.4', '10.1.0.0/16'] });
    expect(res.status).toBe(201);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toMatchObject({
      kind: 'instamed', tenant: 'default', name: 'Front desk', url: `/api/webhooks/instamed/${res.body.id}`, enabled: true,
      allowedIps: ['216.177.67.4/32', '10.1.0.0/16'], claimIdentifierSystem: null, auth: 'basic', billIdField: 'AdditionalCode1', requiredHeader: null,
    });
    const { username, password } = res.body.credentials;
    expect(username).toBe(res.body.basicUsername);
    expect(password.length).toBeGreaterThanOrEqual(40);
    const [row] = await t.db.query<{ secret_hash: string; options: unknown }>('SELECT secret_hash, options FROM webhook_source WHERE id = $1', [res.body.id]);
    expect(row.secret_hash).toMatch(/^scrypt\$/);
    expect(JSON.stringify(row)).not.toContain(password);

    const shown = await adminReq('get', `/admin/webhook-sources/${res.body.id}`);
    expect(shown.status).toBe(200);
    expect(shown.body.credentials).toBeUndefined();
    expect(JSON.stringify(shown.body)).not.toContain(password);
    const listed = await adminReq('get', '/admin/webhook-sources?tenant=default');
    expect(listed.body.sources.map((s: { id: string }) => s.id)).toContain(res.body.id);
  });

  it('refuses bad input with 400 {error} and changes nothing', async () => {
    const before = await t.db.query('SELECT count(*)::int AS n FROM webhook_source');
    const cases = [
      { tenant: 'default', kind: 'stripe', name: 'x' },
      { tenant: 'default', kind: 'instamed' },
      { tenant: 'default', kind: 'instamed', name: 'x', allowedIps: ['not-an-ip'] },
      { tenant: 'default', kind: 'instamed', name: 'x', auth: 'both' },
      { tenant: 'default', kind: 'instamed', name: 'x', fieldMap: { amount: 'Amount; DROP TABLE' } },
      { tenant: 'default', kind: 'instamed', name: 'x', fieldMap: { nonsense: 'X' } },
      { tenant: 'default', kind: 'instamed', name: 'x', surprise: true },
      { tenant: 'default', kind: 'instamed', name: 'x', claimIdentifierSystem: 'not a uri' },
      [1, 2],
    ];
    for (const body of cases) {
      const res = await adminReq('post', '/admin/webhook-sources').send(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error).toMatch(/^Invalid webhook source/);
    }
    expect((await adminReq('post', '/admin/webhook-sources').send({ tenant: 'nobody', kind: 'instamed', name: 'x' })).status).toBe(404);
    const broken = await adminReq('post', '/admin/webhook-sources').set('Content-Type', 'application/json').send('{"tenant":');
    expect(broken.status).toBe(400);
    expect(await t.db.query('SELECT count(*)::int AS n FROM webhook_source')).toEqual(before);
  });

  it('needs the admin scope, or system/*.cruds for its own tenant, to change; a tenant client with system/*.rs may list its own tenant\'s', async () => {
    const fhirOnly = await t.token('system/*.cruds');
    const readOnly = await t.token('system/*.rs');
    const refused = await adminReq('post', '/admin/webhook-sources', readOnly).send({ kind: 'instamed', name: 'x' });
    expect(refused.status).toBe(403);
    expect(refused.headers['www-authenticate']).toMatch(/insufficient_scope/);
    expect(refused.body.error).toMatch(/system\/\*\.cud/);
    expect((await adminReq('get', '/admin/webhook-sources', readOnly)).status).toBe(200);
    expect((await adminReq('get', '/admin/webhook-sources', await t.token('system/Claim.rs'))).status).toBe(403);
    expect((await adminReq('get', '/admin/webhook-sources?tenant=elsewhere', fhirOnly)).status).toBe(403);
    expect((await request(t.app).get('/admin/webhook-sources')).status).toBe(401);
  });

  it('patches options, rotates credentials (the old password stops at once) and deletes', async () => {
    const c = client(t, await t.token());
    const claim = await c.claim(await c.patient());
    const source = await registerSource(t, admin);
    const old = source.credentials!;
    expect((await post(t, source.url, old, sale('rot-1', claim.billId, '1.00'))).status).toBe(200);

    const rotated = await adminReq('post', `/admin/webhook-sources/${source.id}/rotate-credentials`);
    expect(rotated.status).toBe(200);
    const fresh = rotated.body.credentials;
    expect(fresh.password).not.toBe(old.password);
    expect((await post(t, source.url, old, sale('rot-2', claim.billId, '1.00'))).status).toBe(401);
    expect((await post(t, source.url, fresh, sale('rot-2', claim.billId, '1.00'))).status).toBe(200);

    const patched = await adminReq('patch', `/admin/webhook-sources/${source.id}`).send({ name: 'Renamed', billIdField: 'AdditionalInfo1', allowedIps: [] });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ name: 'Renamed', billIdField: 'AdditionalInfo1', auth: 'basic' });
    expect(patched.body.credentials).toBeUndefined();
    expect((await adminReq('patch', `/admin/webhook-sources/${source.id}`).send({ tenant: 'other' })).status).toBe(400);
    expect((await adminReq('patch', `/admin/webhook-sources/${source.id}`).send({ auth: 'neither' })).status).toBe(400);

    // To OAuth: the password is forgotten; rotating has nothing to rotate.
    const toOauth = await adminReq('patch', `/admin/webhook-sources/${source.id}`).send({ auth: 'oauth' });
    expect(toOauth.body.auth).toBe('oauth');
    expect((await post(t, source.url, fresh, sale('rot-3', claim.billId, '1.00'))).status).toBe(401);
    expect((await adminReq('post', `/admin/webhook-sources/${source.id}/rotate-credentials`)).status).toBe(400);
    // Back to Basic: new credentials, shown in the answer.
    const toBasic = await adminReq('patch', `/admin/webhook-sources/${source.id}`).send({ auth: 'basic' });
    expect(toBasic.body.credentials.password).toBeTruthy();

    expect((await adminReq('delete', `/admin/webhook-sources/${source.id}`)).status).toBe(200);
    expect((await adminReq('get', `/admin/webhook-sources/${source.id}`)).status).toBe(404);
    expect((await post(t, source.url, toBasic.body.credentials, sale('rot-4', claim.billId, '1.00'))).status).toBe(404);
    await expectBooksBalanced(t);
  });
});

describe('authentication of a source', () => {
  it('Basic: a wrong password, another source\'s password or none is 401 with a challenge, journalled, nothing stored', async () => {
    const c = client(t, await t.token());
    const claim = await c.claim(await c.patient());
    const source = await registerSource(t, admin);
    const other = await registerSource(t, admin);
    for (const creds of [{ ...source.credentials!, password: 'wrong' }, other.credentials!, { username: 'x', password: source.credentials!.password }]) {
      const res = await post(t, source.url, creds, sale('auth-1', claim.billId, '5.00'));
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Basic/);
      expect(res.text).toBe('Invalid username or password');
    }
    const none = await request(t.app).post(source.url).type('json').send(JSON.stringify(sale('auth-1', claim.billId, '5.00')));
    expect(none.status).toBe(401);
    expect(await c.paidOn(claim.id)).toBeUndefined();
    const journal = (await listEvents(t.db, 'default', 'instamed')).filter((e) => e.sourceId === source.id);
    expect(journal).toHaveLength(4);
    expect(journal.every((e) => e.status === 'refused' && e.response?.status === 401 && e.rawBody?.includes('auth-1'))).toBe(true);
    expect(JSON.stringify(journal)).not.toContain(source.credentials!.password);
  });

  it('Basic failures are limited per source and address: 429 with Retry-After, also for the right password, not for other callers', async () => {
    const limited = await startTestApp({ auth: { failuresPerClient: 3 }, trustedProxies: ['127.0.0.0/8', '::1/128'] });
    try {
      const limitedAdmin = await limited.token('admin');
      const source = await registerSource(limited, limitedAdmin);
      const c = client(limited, await limited.token());
      const claim = await c.claim(await c.patient());
      const from = (address: string, creds: { username: string; password: string }) =>
        request(limited.app).post(source.url).set('X-Forwarded-For', address).auth(creds.username, creds.password).type('json').send(JSON.stringify(sale('limit-1', claim.billId, '5.00')));
      const wrong = { ...source.credentials!, password: 'wrong' };
      for (let i = 0; i < 3; i++) expect((await from('203.0.113.9', wrong)).status).toBe(401);
      const locked = await from('203.0.113.9', source.credentials!);
      expect(locked.status).toBe(429);
      expect(locked.headers['retry-after']).toMatch(/^\d+$/);
      // The real sender, elsewhere, is not locked out by someone else's failures.
      const sender = await from('216.177.67.4', source.credentials!);
      expect(sender.status).toBe(200);
      expect(sender.text).toMatch(/^Stored: payment limit-1/);
    } finally {
      await limited.close();
    }
  });

  it('OAuth: a token of a client of the same tenant with the webhook scope; another tenant\'s token is 401; no scope 403', async () => {
    const c = client(t, await t.token());
    const claim = await c.claim(await c.patient());
    const source = await registerSource(t, admin, { auth: 'oauth' });
    expect(source.credentials).toBeUndefined();
    const otherTenant = await t.token('webhook', 'other-clinic');
    expect((await post(t, source.url, otherTenant, sale('oauth-1', claim.billId, '2.00'))).status).toBe(401);
    expect((await post(t, source.url, await t.token('system/Claim.rs'), sale('oauth-1', claim.billId, '2.00'))).status).toBe(403);
    // Basic is not accepted by an OAuth source, whatever it says.
    expect((await post(t, source.url, { username: 'a', password: 'b' }, sale('oauth-1', claim.billId, '2.00'))).status).toBe(401);
    const ok = await post(t, source.url, await t.token('webhook'), sale('oauth-1', claim.billId, '2.00'));
    expect(ok.status, ok.text).toBe(200);
  });

  it('allowedIps: another address is 403; disabled sources are 403', async () => {
    const c = client(t, await t.token());
    const claim = await c.claim(await c.patient());
    const source = await registerSource(t, admin, { allowedIps: ['216.177.67.4'] });
    const creds = source.credentials!;
    const refused = await post(t, source.url, creds, sale('ip-1', claim.billId, '3.00')).set('X-Forwarded-For', '203.0.113.9');
    expect(refused.status).toBe(403);
    expect(refused.text).toMatch(/203\.0\.113\.9 is not allowed/);
    // supertest connects from loopback, a trusted proxy by default: its X-Forwarded-For counts.
    const allowed = await post(t, source.url, creds, sale('ip-1', claim.billId, '3.00')).set('X-Forwarded-For', '216.177.67.4');
    expect(allowed.status, allowed.text).toBe(200);
    await adminReq('patch', `/admin/webhook-sources/${source.id}`).send({ enabled: false });
    expect((await post(t, source.url, creds, sale('ip-2', claim.billId, '3.00')).set('X-Forwarded-For', '216.177.67.4')).status).toBe(403);
  });

  it('X-Forwarded-For from an untrusted proxy does not count (TRUSTED_PROXIES), nor does its required header', async () => {
    const strict = await startTestApp({ trustedProxies: ['10.99.0.0/16'] });
    try {
      const strictAdmin = await strict.token('admin');
      const c = client(strict, await strict.token());
      const claim = await c.claim(await c.patient());
      const source = await registerSource(strict, strictAdmin, { allowedIps: ['216.177.67.4'] });
      const spoofed = await post(strict, source.url, source.credentials!, sale('xff-1', claim.billId, '1.00')).set('X-Forwarded-For', '216.177.67.4');
      expect(spoofed.status).toBe(403);
      expect(spoofed.text).toMatch(/127\.0\.0\.1|::1/);

      const mtls = await registerSource(strict, strictAdmin, { requiredHeader: { name: 'X-SSL-Client-Verify', value: 'SUCCESS' } });
      const forged = await post(strict, mtls.url, mtls.credentials!, sale('xff-2', claim.billId, '1.00')).set('X-SSL-Client-Verify', 'SUCCESS');
      expect(forged.status).toBe(401);
      expect(forged.text).toBe('A verified client certificate is required');
    } finally {
      await strict.close();
    }
  });

  it('a required header from a trusted proxy (mutual TLS at nginx) is checked before the password', async () => {
    const c = client(t, await t.token());
    const claim = await c.claim(await c.patient());
    const source = await registerSource(t, admin, { requiredHeader: { name: 'X-SSL-Client-Verify', value: 'SUCCESS' } });
    expect((await post(t, source.url, source.credentials!, sale('mtls-1', claim.billId, '1.00'))).status).toBe(401);
    expect((await post(t, source.url, source.credentials!, sale('mtls-1', claim.billId, '1.00')).set('X-SSL-Client-Verify', 'FAILED:x')).status).toBe(401);
    const ok = await post(t, source.url, source.credentials!, sale('mtls-1', claim.billId, '1.00')).set('X-SSL-Client-Verify', 'SUCCESS');
    expect(ok.status, ok.text).toBe(200);
  });

  it('TRUSTED_PROXIES is a list of addresses or CIDRs (default loopback; empty trusts none)', () => {
    expect(loadConfig({}).trustedProxies).toEqual(['127.0.0.0/8', '::1/128']);
    expect(loadConfig({ TRUSTED_PROXIES: '10.0.0.0/8, 192.0.2.7' }).trustedProxies).toEqual(['10.0.0.0/8', '192.0.2.7']);
    expect(loadConfig({ TRUSTED_PROXIES: '' }).trustedProxies).toEqual([]);
    expect(() => loadConfig({ TRUSTED_PROXIES: '10.0.0.0/8,nonsense' })).toThrow(/TRUSTED_PROXIES/);
  });

  it('an unknown source id is 404', async () => {
    const res = await post(t, '/api/webhooks/instamed/src_nothing', { username: 'a', password: 'b' }, sale('x', 'y', '1.00'));
    expect(res.status).toBe(404);
  });
});

describe('fhir-billing sources (CLI)', () => {
  const cli = async (...args: string[]) => {
    const { code, stdout, stderr } = await runCommand(t.db, t.auth, args);
    return { code, out: stdout ? JSON.parse(stdout) : undefined, err: stderr };
  };

  it('create, list, show, update, rotate-credentials and delete, with the same checks as the admin API', async () => {
    const c = client(t, await t.token());
    const claim = await c.claim(await c.patient());
    const created = await cli('sources', 'create', '--tenant', 'default', '--kind', 'instamed', '--name', 'CLI desk', '--allowed-ips', '127.0.0.1, ::1', '--bill-id-field', 'AdditionalCode2');
    expect(created.code, created.err).toBe(0);
    expect(created.out).toMatchObject({ kind: 'instamed', url: `/api/webhooks/instamed/${created.out.id}`, allowedIps: ['127.0.0.1/32', '::1/128'], billIdField: 'AdditionalCode2' });
    const id = created.out.id as string;
    const paid = await post(t, created.out.url, created.out.credentials, sale('cli-1', 'ignored', '4.00', { AdditionalCode2: claim.billId }));
    expect(paid.status, paid.text).toBe(200);
    expect(await c.paidOn(claim.id)).toBe(0);

    expect((await cli('sources', 'list', '--tenant', 'default')).out.sources.map((x: { id: string }) => x.id)).toContain(id);
    expect((await cli('sources', 'show', id)).out.credentials).toBeUndefined();
    const updated = await cli('sources', 'update', id, '--disabled', '--required-header', 'X-SSL-Client-Verify: SUCCESS');
    expect(updated.out).toMatchObject({ enabled: false, requiredHeader: { name: 'X-SSL-Client-Verify', value: 'SUCCESS' } });
    const rotated = await cli('sources', 'rotate-credentials', id);
    expect(rotated.out.credentials.password).not.toBe(created.out.credentials.password);
    const bad = await cli('sources', 'create', '--tenant', 'default', '--kind', 'instamed', '--name', 'x', '--auth', 'both');
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.err).error).toMatch(/^Invalid webhook source/);
    expect((await cli('sources', 'delete', id)).out).toEqual({ deleted: id });
    expect((await cli('sources', 'show', id)).code).toBe(1);
    expect((await cli('sources', 'frobnicate')).code).toBe(2);
  });

  it('a tyro source: unsigned with a URL token and header, its tolerance and funder, then rotated', async () => {
    const token = 'cli-url-token-0123456789abcdef';
    const created = await cli('sources', 'create', '--tenant', 'default', '--kind', 'tyro', '--name', 'Tyro by CLI', '--unsigned', '--url-token', token,
      '--required-header', 'sessionKey: cli-header-value-0123456789abcdef', '--funder', 'hicaps', '--timestamp-tolerance', '7200');
    expect(created.code, created.err).toBe(0);
    expect(created.out).toMatchObject({ kind: 'tyro', signed: false, funder: 'hicaps', timestampToleranceSeconds: 7200, signingSecretSet: false });
    expect(created.out.credentials).toBeUndefined();
    expect(JSON.stringify(created.out)).not.toContain(token);
    expect((await request(t.app).get(`${created.out.url}/${token}`).set('sessionKey', 'cli-header-value-0123456789abcdef')).status).toBe(200);
    const rotated = await cli('sources', 'rotate-credentials', created.out.id);
    expect(rotated.code, rotated.err).toBe(0);
    const { urlToken, requiredHeader } = rotated.out.credentials;
    expect((await request(t.app).get(`${created.out.url}/${urlToken}`).set('sessionKey', requiredHeader.value)).status).toBe(200);
    expect((await request(t.app).get(`${created.out.url}/${token}`).set('sessionKey', requiredHeader.value)).status).toBe(401);
    const bad = await cli('sources', 'update', created.out.id, '--timestamp-tolerance', 'soon');
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.err).error).toMatch(/timestampToleranceSeconds/);
  });
});
