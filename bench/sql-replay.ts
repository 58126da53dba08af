import { createHash, randomUUID } from 'node:crypto';
import pg from 'pg';
import { beginStatements } from '../src/db/database.ts';
import type { Database, QueryOptions, Queryable } from '../src/db/index.ts';

/**
 * The database's own rate for what one request costs in SQL: a wrapper Database records every
 * statement the real server code runs during one request (transaction boundaries included), and
 * `replay` runs that same sequence through a plain `pg` Pool, with the ids swapped for another
 * request's, as fast as the database takes it. The ratio of the HTTP rate to this rate is the share
 * of the database's limit that the server reaches.
 */
export interface Statement {
  sql: string;
  params: readonly unknown[];
  prepare: boolean;
  /** Which transaction it ran in (statements with the same number share one connection); null: none. */
  tx: number | null;
}

export interface Recording {
  readonly statements: Statement[];
  /** Records from now on; returns what was recorded since the last call. */
  take(): Statement[];
}

/** `inner` with every statement recorded. */
export function recordingDatabase(inner: Database): Database & Recording {
  let statements: Statement[] = [];
  let nextTx = 0;
  const record = (sql: string, params: readonly unknown[] | undefined, options: QueryOptions | undefined, tx: number | null): void => {
    statements.push({ sql, params: structuredClone(params ?? []), prepare: options?.prepare === true, tx });
  };
  return {
    kind: inner.kind,
    get statements() {
      return statements;
    },
    take() {
      const taken = statements;
      statements = [];
      return taken;
    },
    query(sql, params, options) {
      record(sql, params, options, null);
      return inner.query(sql, params, options);
    },
    transaction(fn, options) {
      return inner.transaction(async (tx) => {
        // A retried transaction records again: what was recorded is what the database did.
        const id = nextTx++;
        for (const statement of beginStatements(options)) record(statement, [], undefined, id);
        const recorded: Queryable = {
          query(sql, params, queryOptions) {
            record(sql, params, queryOptions, id);
            return tx.query(sql, params, queryOptions);
          },
        };
        const result = await fn(recorded);
        record('COMMIT', [], undefined, id);
        return result;
      }, options);
    },
    listen: (channel, onNotify) => inner.listen(channel, onNotify),
    close: () => inner.close(),
  };
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

/**
 * The statements with every UUID in their parameters (resource ids, bill ids, trace ids, inside
 * JSON too) replaced: those in `known` by their counterpart (the ids the recorded request found,
 * e.g. its Claim, for another request's), every other one (ids the request created) by a fresh one.
 */
export function substitute(statements: readonly Statement[], known: ReadonlyMap<string, string>): Statement[] {
  const fresh = new Map<string, string>();
  const swap = (s: string): string => s.replace(UUID, (u) => known.get(u) ?? fresh.get(u) ?? fresh.set(u, randomUUID()).get(u)!);
  const value = (v: unknown): unknown => {
    if (typeof v === 'string') return swap(v);
    if (Array.isArray(v)) return v.map(value);
    if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, value(x)]));
    }
    return v;
  };
  return statements.map((s) => ({ ...s, params: s.params.map(value) }));
}

const statementName = (sql: string): string => `q_${createHash('sha1').update(sql).digest('base64url')}`;

/**
 * Runs one request's statements: each transaction on one pooled connection, the rest on any.
 * With `timings`, each statement's milliseconds are pushed to it, in order.
 */
export async function replay(pool: pg.Pool, statements: readonly Statement[], timings?: number[]): Promise<void> {
  let client: pg.PoolClient | undefined;
  let clientTx: number | null = null;
  try {
    for (const s of statements) {
      const config: pg.QueryConfig = s.prepare ? { name: statementName(s.sql), text: s.sql, values: s.params as unknown[] } : { text: s.sql, values: s.params as unknown[] };
      if (clientTx !== s.tx && s.tx !== null) {
        client?.release();
        client = await pool.connect();
        clientTx = s.tx;
      }
      const start = performance.now();
      await (s.tx === null ? pool.query(config) : client!.query(config));
      timings?.push(performance.now() - start);
    }
  } catch (err) {
    if (client) await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client?.release();
  }
}

/** What a recording holds, for the report: statements, transactions, and the first words of each. */
export function describe(statements: readonly Statement[]): string {
  const txs = new Set(statements.map((s) => s.tx).filter((t) => t !== null)).size;
  const kinds = new Map<string, number>();
  for (const s of statements) {
    const word = s.sql.trim().split(/\s+/)[0].toUpperCase();
    kinds.set(word, (kinds.get(word) ?? 0) + 1);
  }
  return `${statements.length} statements in ${txs} transaction(s): ${[...kinds].map(([k, n]) => `${n} ${k}`).join(', ')}`;
}
