import type { Queryable } from '../db/index.ts';
import type { SearchIndexRows } from './search/index-values.ts';

/**
 * The SQL of the FHIR store: current versions, history, index rows and outbox (migrations/001).
 * Every statement is keyed by tenant first. Callers hold the transaction.
 */
export interface StoredVersion {
  id: string;
  versionId: number;
  lastUpdated: Date;
  deleted: boolean;
  content: string;
}

export interface ResourceKey {
  tenantId: string;
  resourceType: string;
  id: string;
}

export type Interaction = 'create' | 'update' | 'delete';

const VERSION_COLUMNS = 'id, version_id AS "versionId", last_updated AS "lastUpdated", deleted, content';

export async function selectCurrent(db: Queryable, key: ResourceKey, forUpdate = false): Promise<StoredVersion | undefined> {
  const rows = await db.query<StoredVersion>(
    `SELECT ${VERSION_COLUMNS} FROM resource WHERE tenant_id = $1 AND resource_type = $2 AND id = $3` +
      (forUpdate ? ' FOR UPDATE' : ''),
    [key.tenantId, key.resourceType, key.id],
    { prepare: true },
  );
  return rows[0];
}

export async function selectCurrentMany(db: Queryable, tenantId: string, resourceType: string, ids: string[]): Promise<StoredVersion[]> {
  return db.query<StoredVersion>(
    `SELECT ${VERSION_COLUMNS} FROM resource WHERE tenant_id = $1 AND resource_type = $2 AND id = ANY($3::text[])`,
    [tenantId, resourceType, ids],
  );
}

export async function selectVersion(db: Queryable, key: ResourceKey, versionId: number): Promise<StoredVersion | undefined> {
  const rows = await db.query<StoredVersion>(
    `SELECT ${VERSION_COLUMNS} FROM resource_history
      WHERE tenant_id = $1 AND resource_type = $2 AND id = $3 AND version_id = $4`,
    [key.tenantId, key.resourceType, key.id, versionId],
  );
  return rows[0];
}

export interface HistoryQuery {
  tenantId: string;
  /** One type (instance and type history) or several (system history: the types the caller may search). */
  resourceType: string | string[];
  /** Absent: the history of every resource of the type. */
  id?: string;
  since?: string;
  offset: number;
  limit: number;
}

/** Newest first, as the FHIR history interaction returns them. */
export async function selectHistory(db: Queryable, q: HistoryQuery): Promise<(StoredVersion & { resourceType: string })[]> {
  return db.query(
    `SELECT resource_type AS "resourceType", ${VERSION_COLUMNS} FROM resource_history
      WHERE tenant_id = $1 AND resource_type = ANY($2::text[]) AND ($3::text IS NULL OR id = $3)
        AND ($4::timestamptz IS NULL OR last_updated > $4)
      ORDER BY last_updated DESC, resource_type, id, version_id DESC LIMIT $5 OFFSET $6`,
    [q.tenantId, [q.resourceType].flat(), q.id ?? null, q.since ?? null, q.limit, q.offset],
  );
}

export async function countHistory(db: Queryable, q: Omit<HistoryQuery, 'offset' | 'limit'>): Promise<number> {
  const rows = await db.query<{ n: string }>(
    `SELECT count(*)::text AS n FROM resource_history
      WHERE tenant_id = $1 AND resource_type = ANY($2::text[]) AND ($3::text IS NULL OR id = $3)
        AND ($4::timestamptz IS NULL OR last_updated > $4)`,
    [q.tenantId, [q.resourceType].flat(), q.id ?? null, q.since ?? null],
  );
  return Number(rows[0].n);
}

export interface NewVersion {
  key: ResourceKey;
  versionId: number;
  lastUpdated: string;
  deleted: boolean;
  content: string;
  interaction: Interaction;
  /** Absent for a delete: the index rows are removed. */
  index?: SearchIndexRows;
}

/**
 * Writes one version in a single statement: the current row, the history row, the index rows
 * (replacing the previous version's) and the outbox row. Data-modifying CTEs all run, in one
 * snapshot, so the statement is atomic and costs one round trip.
 */
export async function writeVersion(db: Queryable, v: NewVersion): Promise<void> {
  const { tenantId, resourceType, id } = v.key;
  const ix = v.index ?? { token: [], string: [], reference: [], date: [], number: [] };
  const params: unknown[] = [tenantId, resourceType, id, v.versionId, v.lastUpdated, v.deleted, v.content, v.interaction];
  const bind = (value: unknown): string => `$${params.push(value)}`;
  const isFirstVersion = v.versionId === 1;

  const ctes = [
    `cur AS (INSERT INTO resource (tenant_id, resource_type, id, version_id, last_updated, deleted, content)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (tenant_id, resource_type, id) DO UPDATE
         SET version_id = EXCLUDED.version_id, last_updated = EXCLUDED.last_updated,
             deleted = EXCLUDED.deleted, content = EXCLUDED.content)`,
    `hist AS (INSERT INTO resource_history (tenant_id, resource_type, id, version_id, last_updated, deleted, content)
       VALUES ($1, $2, $3, $4, $5, $6, $7))`,
    `ob AS (INSERT INTO outbox (tenant_id, resource_type, resource_id, version_id, interaction)
       VALUES ($1, $2, $3, $4, $8))`,
  ];
  if (!isFirstVersion) {
    for (const table of ['token', 'string', 'reference', 'date', 'number']) {
      ctes.push(`del_${table} AS (DELETE FROM search_${table} WHERE tenant_id = $1 AND resource_type = $2 AND resource_id = $3)`);
    }
  }
  insertIndexRows(ctes, bind, ix);

  // Its text varies only with which index tables get rows: a handful of texts, each prepared once.
  await db.query(`WITH ${ctes.join(',\n')} SELECT 1`, params, { prepare: true });
}

/** CTEs inserting the index rows of the resource whose tenant, type and id are $1, $2, $3. */
function insertIndexRows(ctes: string[], bind: (value: unknown) => string, ix: SearchIndexRows): void {
  const insertRows = (table: string, columns: string[], types: string[], rows: unknown[][]): void => {
    if (rows.length === 0) return;
    const arrays = columns.map((_, c) => `${bind(rows.map((r) => r[c]))}::${types[c]}[]`);
    ctes.push(
      `ins_${table} AS (INSERT INTO search_${table} (tenant_id, resource_type, resource_id, ${columns.join(', ')})
         SELECT $1, $2, $3, * FROM unnest(${arrays.join(', ')}))`,
    );
  };
  insertRows('token', ['code', 'system', 'value'], ['text', 'text', 'text'], ix.token.map((t) => [t.code, t.system, t.value]));
  insertRows('string', ['code', 'value', 'normalized'], ['text', 'text', 'text'], ix.string.map((s) => [s.code, s.value, s.normalized]));
  insertRows('reference', ['code', 'reference', 'target_id'], ['text', 'text', 'text'], ix.reference.map((r) => [r.code, r.reference, r.targetId]));
  insertRows('date', ['code', 'low', 'high'], ['text', 'timestamptz', 'timestamptz'], ix.date.map((d) => [d.code, d.low, d.high]));
  insertRows('number', ['code', 'value', 'system', 'unit'], ['text', 'numeric', 'text', 'text'], ix.number.map((n) => [n.code, n.value, n.system, n.unit]));
}

/** The stored current version of a live resource, with its key (the reindex reads these). */
export interface CurrentResource extends ResourceKey {
  content: string;
}

/**
 * The next `limit` live resources after `after` in key order, locked FOR UPDATE: a writer of one
 * of them waits (its own SELECT ... FOR UPDATE comes first, repository.ts) until the caller's
 * transaction has replaced the index rows, and then replaces them again with its own version's.
 */
export async function selectForReindex(
  db: Queryable,
  filter: { tenantId?: string; resourceType?: string },
  after: ResourceKey | undefined,
  limit: number,
): Promise<CurrentResource[]> {
  return db.query<CurrentResource>(
    `SELECT tenant_id AS "tenantId", resource_type AS "resourceType", id, content FROM resource
      WHERE NOT deleted AND ($1::text IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR resource_type = $2)
        AND (tenant_id, resource_type, id) > ($3, $4, $5)
      ORDER BY tenant_id, resource_type, id LIMIT $6 FOR UPDATE`,
    [filter.tenantId ?? null, filter.resourceType ?? null, after?.tenantId ?? '', after?.resourceType ?? '', after?.id ?? '', limit],
  );
}

/** Replaces one resource's index rows with `index`, in one statement. */
export async function replaceSearchIndex(db: Queryable, key: ResourceKey, index: SearchIndexRows): Promise<void> {
  const params: unknown[] = [key.tenantId, key.resourceType, key.id];
  const bind = (value: unknown): string => `$${params.push(value)}`;
  const ctes = ['token', 'string', 'reference', 'date', 'number'].map(
    (table) => `del_${table} AS (DELETE FROM search_${table} WHERE tenant_id = $1 AND resource_type = $2 AND resource_id = $3)`,
  );
  insertIndexRows(ctes, bind, index);
  await db.query(`WITH ${ctes.join(',\n')} SELECT 1`, params, { prepare: true });
}
