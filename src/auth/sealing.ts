import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Queryable } from '../db/index.ts';
import { databaseSealingKey } from './store.ts';

/**
 * Secrets we must be able to read back (an HMAC key a sender signs with), sealed with AES-256-GCM.
 * The key is SECRETS_KEY when configured (so a database dump alone reveals nothing), else one
 * generated on first use and kept in the database (sealing_key), which still keeps the secrets
 * out of logs, exports and the admin API's answers. A sealed value names its key (`env` or `db`),
 * so values sealed before SECRETS_KEY was set stay readable after.
 *
 *   v1.<kid>.<iv>.<tag>.<ciphertext>   (base64url parts)
 */
export interface SealingSettings {
  /** 32 bytes from SECRETS_KEY; absent: the database's own key. */
  sealingKey?: Buffer;
}

type KeyId = 'env' | 'db';

async function keyFor(conn: Queryable, settings: SealingSettings, kid: KeyId): Promise<Buffer> {
  if (kid === 'db') return databaseSealingKey(conn, () => randomBytes(32));
  if (!settings.sealingKey) throw new Error('A secret was sealed with SECRETS_KEY, which is not configured now');
  return settings.sealingKey;
}

export async function seal(conn: Queryable, settings: SealingSettings, plaintext: string): Promise<string> {
  const kid: KeyId = settings.sealingKey ? 'env' : 'db';
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', await keyFor(conn, settings, kid), iv);
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return ['v1', kid, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ciphertext.toString('base64url')].join('.');
}

export async function unseal(conn: Queryable, settings: SealingSettings, sealed: string): Promise<string> {
  const [version, kid, iv, tag, ciphertext] = sealed.split('.');
  if (version !== 'v1' || (kid !== 'env' && kid !== 'db') || ciphertext === undefined) throw new Error('Not a sealed secret');
  const decipher = createDecipheriv('aes-256-gcm', await keyFor(conn, settings, kid), Buffer.from(iv, 'base64url'));
  decipher.setAuthTag(Buffer.from(tag, 'base64url'));
  return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8');
}

/** SECRETS_KEY: 32 bytes, as base64 or 64 hex digits. */
export function parseSealingKey(value: string): Buffer | undefined {
  const key = /^[0-9a-f]{64}$/i.test(value) ? Buffer.from(value, 'hex') : Buffer.from(value, 'base64');
  return key.length === 32 ? key : undefined;
}
