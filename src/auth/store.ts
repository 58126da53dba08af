import type { Queryable } from '../db/index.ts';

/** The SQL of authentication (migrations/002_auth.sql). Every statement is parameterised. */

// ---- tenants -------------------------------------------------------------------------------

/** Inserts a tenant; false when the id is taken. */
export async function insertTenant(db: Queryable, id: string, name: string, currency = 'USD'): Promise<boolean> {
  const rows = await db.query('INSERT INTO tenant (id, name, currency) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING RETURNING id', [id, name, currency]);
  return rows.length === 1;
}

export async function tenantExists(db: Queryable, id: string): Promise<boolean> {
  return (await db.query('SELECT 1 FROM tenant WHERE id = $1', [id])).length === 1;
}

export interface TenantRow {
  id: string;
  name: string;
  currency: string;
  createdAt: Date;
}

export async function selectTenants(db: Queryable): Promise<TenantRow[]> {
  return db.query<TenantRow>('SELECT id, name, currency, created_at AS "createdAt" FROM tenant ORDER BY id');
}

// ---- API clients ---------------------------------------------------------------------------

export interface ClientRow {
  id: string;
  tenantId: string;
  name: string;
  secretHash: string;
  scopes: string[];
  /** A JWK Set as JSON text. */
  jwks: string | null;
  jwksUrl: string | null;
  /** Bumped by every secret change; access tokens carry it and die when it moves on. */
  tokenGeneration: number;
  createdAt: Date;
}

const CLIENT_COLUMNS = `id, tenant_id AS "tenantId", name, secret_hash AS "secretHash", scopes, jwks,
  jwks_url AS "jwksUrl", token_generation AS "tokenGeneration", created_at AS "createdAt"`;

export type NewClient = Omit<ClientRow, 'createdAt' | 'tokenGeneration'>;

export async function insertClient(db: Queryable, c: NewClient): Promise<ClientRow> {
  const rows = await db.query<ClientRow>(
    `INSERT INTO api_client (id, tenant_id, name, secret_hash, scopes, jwks, jwks_url)
     VALUES ($1, $2, $3, $4, $5::text[], $6, $7) RETURNING ${CLIENT_COLUMNS}`,
    [c.id, c.tenantId, c.name, c.secretHash, c.scopes, c.jwks, c.jwksUrl],
  );
  return rows[0];
}

/**
 * Creates the client or makes the existing one match (tenant, name, scopes, secret hash): the
 * bootstrap client of BOOTSTRAP_CLIENT_ID. A deleted one comes back. A new secret hash revokes the
 * tokens issued under the old one, as rotation does.
 */
export async function upsertClient(db: Queryable, c: NewClient): Promise<void> {
  await db.query(
    `INSERT INTO api_client (id, tenant_id, name, secret_hash, scopes, jwks, jwks_url)
     VALUES ($1, $2, $3, $4, $5::text[], $6, $7)
     ON CONFLICT (id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, name = EXCLUDED.name,
       secret_hash = EXCLUDED.secret_hash, scopes = EXCLUDED.scopes, deleted_at = NULL,
       token_generation = api_client.token_generation
         + CASE WHEN api_client.secret_hash IS DISTINCT FROM EXCLUDED.secret_hash THEN 1 ELSE 0 END`,
    [c.id, c.tenantId, c.name, c.secretHash, c.scopes, c.jwks, c.jwksUrl],
  );
}

/** A client that has not been deleted. */
export async function selectClient(db: Queryable, id: string): Promise<ClientRow | undefined> {
  const rows = await db.query<ClientRow>(`SELECT ${CLIENT_COLUMNS} FROM api_client WHERE id = $1 AND deleted_at IS NULL`, [id]);
  return rows[0];
}

/** The current token generation of a live client (0 when there is none: its tokens fail anyway). */
export async function selectTokenGeneration(db: Queryable, id: string): Promise<number> {
  const rows = await db.query<{ g: number }>('SELECT token_generation AS g FROM api_client WHERE id = $1 AND deleted_at IS NULL', [id]);
  return rows[0]?.g ?? 0;
}

export async function selectClients(db: Queryable, tenantId: string | undefined): Promise<ClientRow[]> {
  return db.query<ClientRow>(
    `SELECT ${CLIENT_COLUMNS} FROM api_client
      WHERE deleted_at IS NULL AND ($1::text IS NULL OR tenant_id = $1) ORDER BY tenant_id, created_at, id`,
    [tenantId ?? null],
  );
}

/** Marks the client deleted; false when there was no such (live) client. */
export async function deleteClient(db: Queryable, id: string): Promise<boolean> {
  const rows = await db.query('UPDATE api_client SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL RETURNING id', [id]);
  return rows.length === 1;
}

/** New secret hash and token generation: every token issued before stops working. */
export async function updateClientSecret(db: Queryable, id: string, secretHash: string): Promise<ClientRow | undefined> {
  const rows = await db.query<ClientRow>(
    `UPDATE api_client SET secret_hash = $2, token_generation = token_generation + 1
      WHERE id = $1 AND deleted_at IS NULL RETURNING ${CLIENT_COLUMNS}`,
    [id, secretHash],
  );
  return rows[0];
}

// ---- signing keys --------------------------------------------------------------------------

export interface SigningKeyRow {
  kid: string;
  alg: string;
  publicJwk: string;
  privateJwk: string;
  createdAt: Date;
  retireAt: Date | null;
}

const KEY_COLUMNS = `kid, alg, public_jwk AS "publicJwk", private_jwk AS "privateJwk", created_at AS "createdAt", retire_at AS "retireAt"`;

export async function insertSigningKey(db: Queryable, k: Pick<SigningKeyRow, 'kid' | 'alg' | 'publicJwk' | 'privateJwk'>): Promise<void> {
  await db.query('INSERT INTO signing_key (kid, alg, public_jwk, private_jwk) VALUES ($1, $2, $3, $4)', [k.kid, k.alg, k.publicJwk, k.privateJwk]);
}

/** The key that signs: the newest one not scheduled for retirement. */
export async function selectActiveSigningKey(db: Queryable): Promise<SigningKeyRow | undefined> {
  const rows = await db.query<SigningKeyRow>(
    `SELECT ${KEY_COLUMNS} FROM signing_key WHERE retire_at IS NULL ORDER BY created_at DESC, kid LIMIT 1`,
  );
  return rows[0];
}

/** Every signing key, retired ones included, newest first (for operators). */
export async function selectSigningKeys(db: Queryable): Promise<SigningKeyRow[]> {
  return db.query<SigningKeyRow>(`SELECT ${KEY_COLUMNS} FROM signing_key ORDER BY created_at DESC, kid`);
}

/** Every key that still verifies: the JWKS. */
export async function selectVerifyingKeys(db: Queryable): Promise<SigningKeyRow[]> {
  return db.query<SigningKeyRow>(
    `SELECT ${KEY_COLUMNS} FROM signing_key WHERE retire_at IS NULL OR retire_at > now() ORDER BY created_at DESC, kid`,
  );
}

/** Every other signing key stops signing now and stops verifying after `graceSeconds`. */
export async function scheduleRetirementOfOthers(db: Queryable, keepKid: string, graceSeconds: number): Promise<void> {
  await db.query(
    `UPDATE signing_key SET retire_at = now() + make_interval(secs => $2)
      WHERE kid <> $1 AND (retire_at IS NULL OR retire_at > now() + make_interval(secs => $2))`,
    [keepKid, graceSeconds],
  );
}

/** Retires one key at once (e.g. it leaked): its tokens stop verifying. */
export async function retireSigningKey(db: Queryable, kid: string): Promise<boolean> {
  const rows = await db.query('UPDATE signing_key SET retire_at = now() WHERE kid = $1 AND (retire_at IS NULL OR retire_at > now()) RETURNING kid', [kid]);
  return rows.length === 1;
}

/**
 * What verifying one access token needs, in one round trip: the public key of `kid` if it still
 * verifies, and the client `clientId` if it still exists.
 */
export interface TokenFacts {
  publicJwk: string;
  client: { tenantId: string; scopes: string[]; validAfter: number | null; tokenGeneration: number } | null;
}

export async function selectTokenFacts(db: Queryable, kid: string, clientId: string): Promise<TokenFacts | undefined> {
  const rows = await db.query<{ publicJwk: string; tenantId: string | null; scopes: string[] | null; validAfter: number | null; tokenGeneration: number | null }>(
    `SELECT k.public_jwk AS "publicJwk", c.tenant_id AS "tenantId", c.scopes,
            extract(epoch FROM c.tokens_valid_after)::float8 AS "validAfter", c.token_generation AS "tokenGeneration"
       FROM signing_key k
       LEFT JOIN api_client c ON c.id = $2 AND c.deleted_at IS NULL
      WHERE k.kid = $1 AND (k.retire_at IS NULL OR k.retire_at > now())`,
    [kid, clientId],
    { prepare: true }, // asked on every authenticated request
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    publicJwk: row.publicJwk,
    client: row.tenantId
      ? { tenantId: row.tenantId, scopes: row.scopes ?? [], validAfter: row.validAfter, tokenGeneration: row.tokenGeneration ?? 0 }
      : null,
  };
}

// ---- client assertions (private_key_jwt) -------------------------------------------------

/** Records an assertion's jti; false when it was used before (a replay). Forgets expired ones. */
export async function recordAssertionJti(db: Queryable, clientId: string, jti: string, expiresAt: Date): Promise<boolean> {
  await db.query('DELETE FROM client_assertion_jti WHERE expires_at < now()');
  const rows = await db.query(
    `INSERT INTO client_assertion_jti (client_id, jti, expires_at) VALUES ($1, $2, $3)
     ON CONFLICT (client_id, jti) DO NOTHING RETURNING jti`,
    [clientId, jti, expiresAt.toISOString()],
  );
  return rows.length === 1;
}

/** The database's own sealing key (auth/sealing.ts), made once by whichever process needs it first. */
export async function databaseSealingKey(conn: Queryable, generate: () => Buffer): Promise<Buffer> {
  await conn.query('INSERT INTO sealing_key (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING', [generate().toString('base64')]);
  const rows = await conn.query<{ key: string }>('SELECT key FROM sealing_key WHERE id = 1');
  return Buffer.from(rows[0].key, 'base64');
}
