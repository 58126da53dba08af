import type { Queryable } from '../../db/index.ts';

/** webhook_source rows (migration 006). The only SQL of the source registry. */
export interface SourceRow {
  tenantId: string;
  id: string;
  kind: string;
  name: string;
  enabled: boolean;
  allowedIps: string[];
  claimIdentifierSystem: string | null;
  options: Record<string, unknown>;
  secretHash: string | null;
  /** An HMAC signing secret, sealed (auth/sealing.ts); NULL when the kind signs nothing. */
  signingSecretSealed: string | null;
  createdAt: string;
  updatedAt: string;
}

const COLUMNS = `tenant_id AS "tenantId", id, kind, name, enabled, allowed_ips AS "allowedIps",
  claim_identifier_system AS "claimIdentifierSystem", options, secret_hash AS "secretHash",
  signing_secret_sealed AS "signingSecretSealed",
  created_at AS "createdAt", updated_at AS "updatedAt"`;

type Raw = Omit<SourceRow, 'allowedIps' | 'options' | 'createdAt' | 'updatedAt'> & {
  allowedIps: unknown;
  options: unknown;
  createdAt: Date | string;
  updatedAt: Date | string;
};

const json = <T>(v: unknown): T => (typeof v === 'string' ? (JSON.parse(v) as T) : (v as T));
const iso = (v: Date | string): string => (v instanceof Date ? v : new Date(v)).toISOString();

function toRow(r: Raw): SourceRow {
  return { ...r, allowedIps: json<string[]>(r.allowedIps), options: json<Record<string, unknown>>(r.options), createdAt: iso(r.createdAt), updatedAt: iso(r.updatedAt) };
}

export async function insertSource(conn: Queryable, s: Omit<SourceRow, 'createdAt' | 'updatedAt'>): Promise<SourceRow> {
  const rows = await conn.query<Raw>(
    `INSERT INTO webhook_source (tenant_id, id, kind, name, enabled, allowed_ips, claim_identifier_system, options, secret_hash, signing_secret_sealed)
     VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8::jsonb, $9, $10) RETURNING ${COLUMNS}`,
    [s.tenantId, s.id, s.kind, s.name, s.enabled, JSON.stringify(s.allowedIps), s.claimIdentifierSystem, JSON.stringify(s.options), s.secretHash, s.signingSecretSealed],
  );
  return toRow(rows[0]);
}

/** By id alone: the webhook URL carries no tenant. */
export async function findSource(conn: Queryable, id: string): Promise<SourceRow | undefined> {
  const rows = await conn.query<Raw>(`SELECT ${COLUMNS} FROM webhook_source WHERE id = $1`, [id]);
  return rows[0] && toRow(rows[0]);
}

export async function listSources(conn: Queryable, tenantId: string | undefined): Promise<SourceRow[]> {
  const rows = await conn.query<Raw>(
    `SELECT ${COLUMNS} FROM webhook_source WHERE ($1::text IS NULL OR tenant_id = $1) ORDER BY created_at, id`,
    [tenantId ?? null],
  );
  return rows.map(toRow);
}

export async function updateSource(
  conn: Queryable,
  s: Pick<SourceRow, 'tenantId' | 'id' | 'name' | 'enabled' | 'allowedIps' | 'claimIdentifierSystem' | 'options' | 'secretHash' | 'signingSecretSealed'>,
): Promise<SourceRow | undefined> {
  const rows = await conn.query<Raw>(
    `UPDATE webhook_source SET name = $3, enabled = $4, allowed_ips = $5::jsonb, claim_identifier_system = $6, options = $7::jsonb,
            secret_hash = $8, signing_secret_sealed = $9, updated_at = now()
      WHERE tenant_id = $1 AND id = $2 RETURNING ${COLUMNS}`,
    [s.tenantId, s.id, s.name, s.enabled, JSON.stringify(s.allowedIps), s.claimIdentifierSystem, JSON.stringify(s.options), s.secretHash, s.signingSecretSealed],
  );
  return rows[0] && toRow(rows[0]);
}

export async function deleteSource(conn: Queryable, tenantId: string, id: string): Promise<boolean> {
  const rows = await conn.query<{ id: string }>('DELETE FROM webhook_source WHERE tenant_id = $1 AND id = $2 RETURNING id', [tenantId, id]);
  return rows.length > 0;
}
