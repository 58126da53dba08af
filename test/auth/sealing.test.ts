import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSealingKey, seal, unseal } from '../../src/auth/index.ts';
import { loadConfig } from '../../src/config.ts';
import { hmacSha256HexMatches } from '../../src/inbound/sources/signing.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t.close();
});

describe('sealed secrets (the HMAC keys of signing webhook sources)', () => {
  it('round-trips under the database key, and the stored text does not contain the secret', async () => {
    const sealed = await seal(t.db, {}, 'curacel-signing-secret-1234');
    expect(sealed).toMatch(/^v1\.db\./);
    expect(sealed).not.toContain('curacel');
    expect(await unseal(t.db, {}, sealed)).toBe('curacel-signing-secret-1234');
  });

  it('seals with SECRETS_KEY when configured, and still opens what the database key sealed before', async () => {
    const before = await seal(t.db, {}, 'sealed-before-the-key-was-set');
    const settings = { sealingKey: randomBytes(32) };
    const sealed = await seal(t.db, settings, 'sealed-with-the-configured-key');
    expect(sealed).toMatch(/^v1\.env\./);
    expect(await unseal(t.db, settings, sealed)).toBe('sealed-with-the-configured-key');
    expect(await unseal(t.db, settings, before)).toBe('sealed-before-the-key-was-set');
    await expect(unseal(t.db, { sealingKey: randomBytes(32) }, sealed)).rejects.toThrow();
    await expect(unseal(t.db, {}, sealed)).rejects.toThrow(/SECRETS_KEY/);
  });

  it('refuses a tampered sealed value', async () => {
    const sealed = await seal(t.db, {}, 'tamper-with-me-please');
    const parts = sealed.split('.');
    const ct = Buffer.from(parts[4], 'base64url');
    ct[0] ^= 1;
    parts[4] = ct.toString('base64url');
    await expect(unseal(t.db, {}, parts.join('.'))).rejects.toThrow();
  });

  it('SECRETS_KEY must be 32 bytes', () => {
    expect(parseSealingKey(randomBytes(32).toString('base64'))).toHaveLength(32);
    expect(parseSealingKey('ab'.repeat(32))).toHaveLength(32);
    expect(parseSealingKey('too-short')).toBeUndefined();
    expect(() => loadConfig({ SECRETS_KEY: 'too-short' })).toThrow(/SECRETS_KEY/);
    expect(loadConfig({ SECRETS_KEY: 'ab'.repeat(32) }).auth.sealingKey).toHaveLength(32);
  });
});

describe('hmacSha256HexMatches', () => {
  const secret = Buffer.from('shared-secret');
  const body = Buffer.from('{"a":"\\/x"}');
  const wellFormedButWrong = 'ab'.repeat(32);
  it('accepts the right signature in either case and nothing else', async () => {
    const { createHmac } = await import('node:crypto');
    const right = createHmac('sha256', secret).update(body).digest('hex');
    expect(hmacSha256HexMatches(secret, body, right)).toBe(true);
    expect(hmacSha256HexMatches(secret, body, right.toUpperCase())).toBe(true);
    expect(hmacSha256HexMatches(secret, [Buffer.from('{"a":'), Buffer.from('"\\/x"}')], right)).toBe(true);
    expect(hmacSha256HexMatches(secret, body, wellFormedButWrong)).toBe(false);
    expect(hmacSha256HexMatches(secret, body, right.slice(0, 62))).toBe(false);
    expect(hmacSha256HexMatches(secret, body, `${right}00`)).toBe(false);
    expect(hmacSha256HexMatches(secret, body, '')).toBe(false);
    expect(hmacSha256HexMatches(Buffer.from('other'), body, right)).toBe(false);
  });
});
