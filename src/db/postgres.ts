import { createHash } from 'node:crypto';
import pg from 'pg';
import { beginStatements, isRetryable } from './database.ts';
import type { Database, QueryOptions, Queryable, Row, TransactionOptions } from './database.ts';
import { asUnavailable, isConnectionFailure } from './unavailable.ts';

const MAX_ATTEMPTS = 8;
/** Re-runs of a transaction whose connection died before COMMIT: a fresh connection, then give up. */
const MAX_CONNECTION_RETRIES = 2;
/** Longest wait for a connection (the pool full, or the server not answering) before a 503. */
const CONNECT_TIMEOUT_MS = 10_000;
const APPLICATION_NAME = 'fhir-billing';
const LISTEN_BACKOFF_MS = { first: 100, max: 5_000 };

/** A prepared statement is named after its text, so the same text reuses one plan per connection. */
function statement(text: string, params: readonly unknown[] | undefined, options: QueryOptions | undefined): pg.QueryConfig {
  const values = params as unknown[] | undefined;
  if (!options?.prepare) return { text, values };
  return { name: `q_${createHash('sha1').update(text).digest('base64url')}`, text, values };
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * PostgreSQL through a `pg` Pool. The database may go away at any time (restart, failover,
 * pg_terminate_backend): no connection's error may crash the process, a dead connection is
 * dropped rather than reused, a connection-class failure reaches callers as DatabaseUnavailable
 * (db/unavailable.ts), and LISTEN reconnects by itself with backoff.
 */
export async function createPostgresDatabase(
  connectionString: string,
  poolSize: number,
  { schema, asynchronousStatements = false }: { schema?: string; asynchronousStatements?: boolean } = {},
): Promise<Database> {
  const settings = [...(schema ? [`-c search_path=${pg.escapeIdentifier(schema)}`] : []), ...(asynchronousStatements ? ['-c synchronous_commit=off'] : [])];
  const options = settings.length > 0 ? settings.join(' ') : undefined;
  if (schema) {
    // Keeps one server's (or one test file's) tables apart from another's in one database.
    const setup = new pg.Client({ connectionString });
    setup.on('error', () => {});
    await setup.connect();
    await setup.query(`CREATE SCHEMA IF NOT EXISTS ${pg.escapeIdentifier(schema)}`).finally(() => setup.end());
  }
  const pool = new pg.Pool({
    connectionString,
    // How operators (and the fault suite) find our sessions in pg_stat_activity; the URL's wins.
    application_name: APPLICATION_NAME,
    max: poolSize,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    ...(options && { options }),
  });
  // An idle client's error (e.g. the server restarted) must not crash the process; the pool drops it.
  pool.on('error', () => {});

  const query = async <R = Row>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<R[]> => {
    try {
      return (await pool.query(statement(sql, params, options))).rows as R[];
    } catch (err) {
      throw asUnavailable(err);
    }
  };

  async function transaction<T>(fn: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T> {
    let connectionRetries = 0;
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        throw asUnavailable(err);
      }
      // A checked-out client has no error listener of the pool's: without this one, a connection
      // that dies mid-transaction would be an uncaught 'error' event (the process would exit).
      let broken: unknown;
      const onError = (err: unknown): void => {
        broken ??= err;
      };
      client.on('error', onError);
      const release = (): void => {
        client.removeListener('error', onError);
        // A dead connection is destroyed, not returned to the pool for the next caller to trip on.
        client.release(broken !== undefined ? (broken as Error) : undefined);
      };
      const tx: Queryable = {
        query: async <R = Row>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<R[]> =>
          (await client.query(statement(sql, params, options))).rows as R[],
      };
      let committing = false;
      try {
        // One round trip: without parameters, pg sends several statements as one simple query.
        await client.query(beginStatements(options, asynchronousStatements).join('; '));
        const result = await fn(tx);
        committing = true;
        await client.query('COMMIT');
        release();
        return result;
      } catch (err) {
        if (isConnectionFailure(err)) broken ??= err;
        else await client.query('ROLLBACK').catch((rollbackErr: unknown) => (broken ??= rollbackErr));
        release();
        // Before COMMIT nothing was applied, so a connection failure may re-run `fn` on a fresh
        // connection; during COMMIT the outcome is unknown, so the caller must hear of it.
        if (isConnectionFailure(err) && !committing && connectionRetries < MAX_CONNECTION_RETRIES) {
          connectionRetries++;
          await pause(50 * connectionRetries + Math.random() * 50);
          continue;
        }
        if (!isRetryable(err) || attempt >= MAX_ATTEMPTS) throw asUnavailable(err);
        // Jittered backoff so conflicting transactions do not collide again in lockstep.
        await pause(Math.random() * 5 * attempt);
      }
    }
  }

  /**
   * LISTEN on a connection of its own (outside the pool, which it would hold forever). When that
   * connection dies it is opened again with backoff, and `onNotify('')` is called once it is back,
   * since notifications sent meanwhile are lost.
   */
  async function listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>> {
    let stopped = false;
    let client: pg.Client | undefined;
    let retry: NodeJS.Timeout | undefined;
    let backoff = LISTEN_BACKOFF_MS.first;

    const open = async (): Promise<void> => {
      const c = new pg.Client({ connectionString, application_name: APPLICATION_NAME, ...(options && { options }) });
      let lost = false;
      const onLost = (): void => {
        if (lost) return;
        lost = true;
        c.removeAllListeners('notification');
        void c.end().catch(() => {});
        if (client === c) client = undefined;
        if (!stopped) schedule();
      };
      c.on('error', onLost);
      c.on('end', onLost);
      c.on('notification', (msg) => {
        if (msg.channel === channel) onNotify(msg.payload ?? '');
      });
      await c.connect();
      await c.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      if (lost) throw new Error('Connection terminated while starting to listen');
      client = c;
      backoff = LISTEN_BACKOFF_MS.first;
    };

    function schedule(): void {
      if (retry || stopped) return;
      const delay = backoff * (0.5 + Math.random());
      backoff = Math.min(backoff * 2, LISTEN_BACKOFF_MS.max);
      retry = setTimeout(() => {
        retry = undefined;
        open().then(
          () => onNotify(''),
          () => schedule(),
        );
      }, delay);
    }

    try {
      await open();
    } catch (err) {
      stopped = true;
      clearTimeout(retry);
      throw asUnavailable(err);
    }
    return async () => {
      stopped = true;
      clearTimeout(retry);
      const c = client;
      client = undefined;
      if (c) {
        c.removeAllListeners('end');
        await c.query(`UNLISTEN ${pg.escapeIdentifier(channel)}`).catch(() => {});
        await c.end().catch(() => {});
      }
    };
  }

  return { kind: 'postgres', query, transaction, listen, close: () => pool.end() };
}
