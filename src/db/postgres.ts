import { createHash } from 'node:crypto';
import pg from 'pg';
import { beginStatements, isRetryable } from './database.ts';
import type { Database, QueryOptions, Queryable, Row, TransactionOptions } from './database.ts';

const MAX_ATTEMPTS = 8;

/** A prepared statement is named after its text, so the same text reuses one plan per connection. */
function statement(text: string, params: readonly unknown[] | undefined, options: QueryOptions | undefined): pg.QueryConfig {
  const values = params as unknown[] | undefined;
  if (!options?.prepare) return { text, values };
  return { name: `q_${createHash('sha1').update(text).digest('base64url')}`, text, values };
}

/** PostgreSQL through a `pg` Pool. */
export async function createPostgresDatabase(connectionString: string, poolSize: number, schema?: string): Promise<Database> {
  if (schema) {
    // Keeps one server's (or one test file's) tables apart from another's in one database.
    const setup = new pg.Client({ connectionString });
    await setup.connect();
    await setup.query(`CREATE SCHEMA IF NOT EXISTS ${pg.escapeIdentifier(schema)}`).finally(() => setup.end());
  }
  const pool = new pg.Pool({
    connectionString,
    max: poolSize,
    ...(schema && { options: `-c search_path=${pg.escapeIdentifier(schema)}` }),
  });
  // An idle client's error (e.g. the server restarted) must not crash the process; the pool drops it.
  pool.on('error', () => {});

  const query = async <R = Row>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<R[]> =>
    (await pool.query(statement(sql, params, options))).rows as R[];

  return {
    kind: 'postgres',
    query,

    async transaction<T>(fn: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T> {
      for (let attempt = 1; ; attempt++) {
        const client = await pool.connect();
        const tx: Queryable = {
          query: async <R = Row>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<R[]> =>
            (await client.query(statement(sql, params, options))).rows as R[],
        };
        try {
          // One round trip: without parameters, pg sends several statements as one simple query.
          await client.query(beginStatements(options).join('; '));
          const result = await fn(tx);
          await client.query('COMMIT');
          client.release();
          return result;
        } catch (err) {
          await client.query('ROLLBACK').catch(() => {});
          client.release();
          if (!isRetryable(err) || attempt >= MAX_ATTEMPTS) throw err;
          // Jittered backoff so conflicting transactions do not collide again in lockstep.
          await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
        }
      }
    },

    async listen(channel, onNotify) {
      const client = await pool.connect();
      client.on('notification', (msg) => {
        if (msg.channel === channel) onNotify(msg.payload ?? '');
      });
      await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      return async () => {
        await client.query(`UNLISTEN ${pg.escapeIdentifier(channel)}`).catch(() => {});
        client.release();
      };
    },

    close: () => pool.end(),
  };
}
