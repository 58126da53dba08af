import type pg from 'pg';
import { extractSearchIndex } from '../src/fhir/search/index-values.ts';
import type { SearchIndexRows } from '../src/fhir/search/index-values.ts';
import { claimResource, seededClaim } from './claims.ts';

/**
 * Bulk loader: writes seeded Claims straight into the tables, in the shape the repository writes
 * them (storage.ts writeVersion: resource + resource_history + search_* rows from
 * extractSearchIndex), thousands per statement. No outbox rows: nothing subscribes to seeded data.
 * loadProfiles() must have run (extractSearchIndex reads the search parameters).
 */
export interface SeedOptions {
  tenantId: string;
  salt: string;
  batchSize: number;
  /** Called after each batch is committed with the number of claims written so far. */
  onProgress?: (written: number) => void;
}

/** Index tables and their columns after (tenant_id, resource_type, resource_id), as in storage.ts. */
const INDEX_TABLES: { kind: keyof SearchIndexRows; columns: string[]; types: string[]; row: (r: any) => unknown[] }[] = [
  { kind: 'token', columns: ['code', 'system', 'value'], types: ['text', 'text', 'text'], row: (t) => [t.code, t.system, t.value] },
  { kind: 'string', columns: ['code', 'value', 'normalized'], types: ['text', 'text', 'text'], row: (s) => [s.code, s.value, s.normalized] },
  { kind: 'reference', columns: ['code', 'reference', 'target_id'], types: ['text', 'text', 'text'], row: (r) => [r.code, r.reference, r.targetId] },
  { kind: 'date', columns: ['code', 'low', 'high'], types: ['text', 'timestamptz', 'timestamptz'], row: (d) => [d.code, d.low, d.high] },
  {
    kind: 'number',
    columns: ['code', 'value', 'system', 'unit'],
    types: ['text', 'numeric', 'text', 'text'],
    row: (n) => [n.code, n.value, n.system, n.unit],
  },
];

interface Batch {
  sql: string;
  params: unknown[];
}

/** Builds one INSERT statement (data-modifying CTEs over unnest'ed arrays) for claims [from, to). */
export function buildBatch(options: SeedOptions, from: number, to: number): Batch {
  const ids: string[] = [];
  const lastUpdated: string[] = [];
  const contents: string[] = [];
  const index = INDEX_TABLES.map((t) => ({ ...t, resourceIds: [] as string[], values: t.columns.map(() => [] as unknown[]) }));

  for (let n = from; n < to; n++) {
    const { id, billId, patientRef } = seededClaim(options.salt, n);
    const { resourceType, ...elements } = claimResource(patientRef, billId, n);
    const updated = new Date().toISOString();
    // Element order as PostgresRepository.#write stores it: resourceType, id, meta, the rest.
    const stored = { resourceType, id, meta: { versionId: '1', lastUpdated: updated }, ...elements };
    ids.push(id);
    lastUpdated.push(updated);
    contents.push(JSON.stringify(stored));
    const rows = extractSearchIndex(stored);
    for (const t of index) {
      for (const r of rows[t.kind]) {
        t.resourceIds.push(id);
        t.row(r).forEach((v, c) => t.values[c].push(v));
      }
    }
  }

  const params: unknown[] = [options.tenantId, 'Claim', ids, lastUpdated, contents];
  const bind = (value: unknown): string => `$${params.push(value)}`;
  const ctes = [
    `src AS (SELECT * FROM unnest($3::text[], $4::timestamptz[], $5::text[]) AS s(id, last_updated, content))`,
    `cur AS (INSERT INTO resource (tenant_id, resource_type, id, version_id, last_updated, deleted, content)
       SELECT $1, $2, id, 1, last_updated, false, content FROM src)`,
    `hist AS (INSERT INTO resource_history (tenant_id, resource_type, id, version_id, last_updated, deleted, content)
       SELECT $1, $2, id, 1, last_updated, false, content FROM src)`,
  ];
  for (const t of index) {
    if (t.resourceIds.length === 0) continue;
    const arrays = [`${bind(t.resourceIds)}::text[]`, ...t.values.map((v, c) => `${bind(v)}::${t.types[c]}[]`)];
    ctes.push(
      `ins_${t.kind} AS (INSERT INTO search_${t.kind} (tenant_id, resource_type, resource_id, ${t.columns.join(', ')})
         SELECT $1, $2, * FROM unnest(${arrays.join(', ')}))`,
    );
  }
  return { sql: `WITH ${ctes.join(',\n')} SELECT 1`, params };
}

/**
 * Seeds claims number [from, to) over the given connections, one statement in flight on each: Node
 * builds the next batch while PostgreSQL inserts the previous ones, so both cores stay busy.
 */
export async function seedClaims(clients: pg.ClientBase[], from: number, to: number, options: SeedOptions): Promise<void> {
  // Bulk-loader setting for these sessions only: a crash mid-seed loses the last batches, which a
  // rerun (a new schema) redoes anyway; nothing waits on each batch's WAL flush.
  await Promise.all(clients.map((c) => c.query('SET synchronous_commit = off')));
  const idle = [...clients];
  const inflight = new Set<Promise<void>>();
  let written = 0;
  for (let start = from; start < to; start += options.batchSize) {
    const end = Math.min(to, start + options.batchSize);
    const batch = buildBatch(options, start, end);
    while (idle.length === 0) await Promise.race(inflight);
    const client = idle.pop()!;
    const done: Promise<void> = client.query(batch.sql, batch.params).then(() => {
      written += end - start;
      options.onProgress?.(written);
      inflight.delete(done);
      idle.push(client);
    });
    inflight.add(done);
  }
  await Promise.all(inflight);
  await Promise.all(clients.map((c) => c.query('RESET synchronous_commit')));
}

/** A one-line progress bar on stderr: `\r` redraws on a terminal, a line per 10% otherwise. */
export class ProgressBar {
  readonly #label: string;
  readonly #total: number;
  readonly #start = performance.now();
  readonly #tty = process.stderr.isTTY === true;
  #lastDraw = 0;
  #lastTenth = -1;

  constructor(label: string, total: number) {
    this.#label = label;
    this.#total = total;
  }

  update(done: number): void {
    const now = performance.now();
    const tenth = Math.floor((done / this.#total) * 10);
    if (this.#tty ? now - this.#lastDraw < 100 && done < this.#total : tenth === this.#lastTenth) return;
    this.#lastDraw = now;
    this.#lastTenth = tenth;
    const width = 30;
    const filled = Math.round((done / this.#total) * width);
    const rate = done / ((now - this.#start) / 1000);
    const eta = rate > 0 ? Math.ceil((this.#total - done) / rate) : 0;
    const line =
      `${this.#label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` +
      `${done.toLocaleString('en-US')}/${this.#total.toLocaleString('en-US')}  ` +
      `${Math.round(rate).toLocaleString('en-US')}/s  eta ${eta}s`;
    process.stderr.write(this.#tty ? `\r${line}\x1b[K` : `${line}\n`);
  }

  /** Ends the bar; returns the seconds it ran. */
  finish(): number {
    if (this.#tty) process.stderr.write('\n');
    return (performance.now() - this.#start) / 1000;
  }
}
