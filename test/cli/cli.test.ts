import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../src/cli/commands.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { processEnv, startServerProcess } from '../support/process.ts';

/** The operator's command line: its commands on the test database, and once as a real process. */
const dir = mkdtempSync(join(tmpdir(), 'fhir-billing-cli-'));
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t.close();
  rmSync(dir, { recursive: true, force: true });
});

async function cli(...args: string[]): Promise<{ code: number; out: any; err: string }> {
  const { code, stdout, stderr } = await runCommand(t.db, t.auth, args);
  return { code, out: stdout ? JSON.parse(stdout) : undefined, err: stderr };
}

describe('fhir-billing commands', () => {
  it('tenants create; clients create, list, rotate-secret, delete; and the credentials work on the server', async () => {
    expect((await cli('tenants', 'create', '--id', 'acme', '--name', 'Acme Clinic')).out).toEqual({ id: 'acme', name: 'Acme Clinic', currency: 'USD' });
    const duplicate = await cli('tenants', 'create', '--id', 'acme', '--name', 'Again');
    expect(duplicate.code).toBe(1);
    expect(JSON.parse(duplicate.err)).toEqual({ error: 'Tenant acme already exists' });

    const created = await cli('clients', 'create', '--tenant', 'acme', '--name', 'billing', '--scopes', 'system/Claim.rs webhook');
    expect(created.code).toBe(0);
    expect(created.out).toMatchObject({ tenant: 'acme', scopes: ['system/Claim.rs', 'webhook'] });
    const { clientId, clientSecret } = created.out;
    expect((await request(t.app).post('/api/token').send({ clientId, clientSecret })).status).toBe(200);

    const rotated = await cli('clients', 'rotate-secret', '--id', clientId);
    expect(rotated.out.clientSecret).not.toBe(clientSecret);
    expect((await request(t.app).post('/api/token').send({ clientId, clientSecret })).status).toBe(401);
    const token = await request(t.app).post('/api/token').send({ clientId, clientSecret: rotated.out.clientSecret });
    expect(token.status).toBe(200);
    expect((await request(t.app).get('/fhir/Claim').auth(token.body.accessToken, { type: 'bearer' })).status).toBe(200);

    expect((await cli('clients', 'list', '--tenant', 'acme')).out.clients.map((c: any) => c.clientId)).toEqual([clientId]);
    expect((await cli('clients', 'delete', '--id', clientId)).out).toEqual({ deleted: clientId });
    expect((await request(t.app).get('/fhir/Claim').auth(token.body.accessToken, { type: 'bearer' })).status).toBe(401);
    expect((await cli('clients', 'delete', clientId)).code).toBe(1); // positional id works too
    expect((await cli('clients', 'list', '--tenant', 'acme')).out.clients).toEqual([]);
  });

  it('tenants list, keys list, and an unknown tenant is an error in clients list (CLI and API alike)', async () => {
    await cli('tenants', 'create', '--id', 'listed', '--name', 'Listed Clinic');
    const tenants = (await cli('tenants', 'list')).out.tenants;
    expect(tenants.map((x: any) => x.id)).toEqual(expect.arrayContaining(['default', 'listed']));
    expect(tenants.find((x: any) => x.id === 'listed')).toMatchObject({ name: 'Listed Clinic', createdAt: expect.any(String) });

    const before = (await cli('keys', 'list')).out.keys;
    expect(before.filter((k: any) => k.state === 'signing')).toHaveLength(1);
    expect(JSON.stringify(before)).not.toMatch(/"d"|privateJwk|publicJwk/);
    const rotated = await cli('keys', 'rotate', '--grace', '60');
    const after = (await cli('keys', 'list')).out.keys;
    expect(after.find((k: any) => k.state === 'signing').kid).toBe(rotated.out.kid);
    expect(after.find((k: any) => k.kid === before[0].kid)).toMatchObject({ state: 'verifying', retireAt: expect.any(String) });

    const unknown = await cli('clients', 'list', '--tenant', 'no-such-tenant');
    expect(unknown.code).toBe(1);
    expect(JSON.parse(unknown.err)).toEqual({ error: 'Unknown tenant: no-such-tenant' });
    const admin = await t.token('admin');
    const api = await request(t.app).get('/admin/clients?tenant=no-such-tenant').auth(admin, { type: 'bearer' });
    expect(api.status).toBe(404);
    expect(api.body).toEqual({ error: 'Unknown tenant: no-such-tenant' });
    const apiTenants = await request(t.app).get('/admin/tenants').auth(admin, { type: 'bearer' });
    expect(apiTenants.body.tenants.map((x: any) => x.id)).toContain('listed');
  });

  it('clients create --jwks FILE registers public keys for private_key_jwt', async () => {
    const { publicKey } = await generateKeyPair('ES384');
    const file = join(dir, 'jwks.json');
    writeFileSync(file, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES384' }] }));
    const created = await cli('clients', 'create', '--tenant', 'default', '--name', 'service', '--jwks', file);
    expect(created.code).toBe(0);
    const listed = (await cli('clients', 'list')).out.clients.find((c: any) => c.clientId === created.out.clientId);
    expect(listed.jwks).toBe(true);
  });

  it('keys rotate and keys retire', async () => {
    const rotated = await cli('keys', 'rotate', '--grace', '60');
    expect(rotated.out).toEqual({ kid: expect.any(String), previousKeysRetireInSeconds: 60 });
    expect((await request(t.app).get('/.well-known/jwks.json')).body.keys[0].kid).toBe(rotated.out.kid);
    expect((await cli('keys', 'retire', '--kid', rotated.out.kid)).out).toEqual({ retired: rotated.out.kid });
    expect((await cli('keys', 'retire', '--kid', rotated.out.kid)).code).toBe(1);
  });

  it('billing claim-id-system shows, sets and resets where bill ids are looked up', async () => {
    const cair = 'https://fhir.cairhealth.com/fhir/identifier/claim-id';
    expect((await cli('billing', 'claim-id-system', '--tenant', 'default')).out).toEqual({ tenant: 'default', claimIdSystem: cair });
    expect((await cli('billing', 'claim-id-system', '--tenant', 'default', '--system', 'urn:example:bill')).out).toEqual({ tenant: 'default', claimIdSystem: 'urn:example:bill' });
    expect((await cli('billing', 'claim-id-system', '--tenant', 'default', '--reset')).out).toEqual({ tenant: 'default', claimIdSystem: cair });
    expect((await cli('billing', 'claim-id-system', '--tenant', 'nope')).code).toBe(1);
    expect((await cli('billing', 'claim-id-system', '--tenant', 'default', '--system', 'not a uri')).code).toBe(2);
  });

  it('help prints the usage on stdout', async () => {
    const { code, stdout } = await runCommand(t.db, t.auth, ['help']);
    expect(code).toBe(0);
    expect(stdout).toContain('tenants list');
  });

  it('usage errors are code 2 with the usage text', async () => {
    for (const args of [['clients', 'create', '--tenant', 'acme'], ['frobnicate'], ['clients', 'list', '--colour', 'red'], ['clients', 'delete', 'a', 'b']]) {
      const res = await cli(...args);
      expect(res.code, args.join(' ')).toBe(2);
      expect(res.err).toContain('usage: fhir-billing');
    }
  });
});

describe('the fhir-billing process', () => {
  it('runs a command on the database its environment names', async () => {
    const env = {
      ...process.env,
      DATA_DIR: join(dir, 'data'),
      DATABASE_SCHEMA: `test_cli_${randomBytes(4).toString('hex')}`,
      SECRET_HASH_COST: '12',
    };
    const { code, stdout } = await new Promise<{ code: number; stdout: string }>((resolve) => {
      execFile(process.execPath, ['src/cli/main.ts', 'tenants', 'create', '--id', 'acme', '--name', 'Acme'], { env }, (error, out) =>
        resolve({ code: error ? Number(error.code) : 0, stdout: out }),
      );
    });
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({ id: 'acme', name: 'Acme', currency: 'USD' });
   }, 180_000); // a process that opens and migrates the database: slow on a loaded machine

  it('reports a bad setting as one {error} line, not a stack trace', async () => {
    const { code, stderr } = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, ['src/cli/main.ts', 'clients', 'list'], { env: { ...process.env, SECRET_HASH_COST: 'high' } }, (error, _out, err) =>
        resolve({ code: error ? Number(error.code) : 0, stderr: err }),
      );
    });
    expect(code).toBe(1);
    expect(JSON.parse(stderr)).toEqual({ error: expect.stringMatching(/^Invalid configuration: SECRET_HASH_COST/) });
  });

  it('refuses an embedded data directory a running server holds, and says to stop it or use the admin API', async () => {
    const env = { DATABASE_URL: undefined, DATA_DIR: join(dir, 'served'), SECRET_HASH_COST: '12', BOOTSTRAP_CLIENT_ID: undefined, BOOTSTRAP_CLIENT_SECRET: undefined };
    const run = (): Promise<{ code: number; stdout: string; stderr: string }> =>
      new Promise((resolve) => {
        execFile(process.execPath, ['src/cli/main.ts', 'tenants', 'create', '--id', 'held', '--name', 'Held'], { env: processEnv(env) }, (error, stdout, stderr) =>
          resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
        );
      });
    const server = await startServerProcess(env);
    try {
      const refused = await run();
      expect(refused.code).toBe(1);
      expect(refused.stdout).toBe('');
      const { error } = JSON.parse(refused.stderr);
      expect(error).toContain(`in use by process ${server.child.pid}`);
      expect(error).toContain('Stop the server first, or use its admin API');
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
    const accepted = await run();
    expect(accepted.code).toBe(0);
    expect(JSON.parse(accepted.stdout)).toEqual({ id: 'held', name: 'Held', currency: 'USD' });
  }, 180_000); // a server process and two command processes: slow on a loaded machine
});
