import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { beginStatements } from './database.ts';
import type { Database, Queryable, Row, TransactionOptions } from './database.ts';

/**
 * Embedded PostgreSQL (PGlite): one connection in one process. Every statement and every
 * transaction takes one lock, so a statement from another request can never land inside someone
 * else's open transaction; transactions therefore run one at a time and never conflict.
 */
export async function createEmbeddedDatabase(dataDir: string): Promise<Database> {
  if (!dataDir.includes('://')) mkdirSync(dataDir, { recursive: true });
  const pglite = await PGlite.create(dataDir);
  let tail: Promise<unknown> = Promise.resolve();

  function exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = tail.then(work, work);
    tail = run.catch(() => {});
    return run;
  }

  const direct: Queryable = {
    query: async <R = Row>(sql: string, params?: readonly unknown[]): Promise<R[]> =>
      (await pglite.query(sql, params as unknown[])).rows as R[],
  };

  return {
    kind: 'embedded',
    // PGlite has one connection and no plan cache to keep; `prepare` changes nothing here.
    query: (sql, params) => exclusive(() => direct.query(sql, params)),

    transaction<T>(fn: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T> {
      return exclusive(async () => {
        for (const statement of beginStatements(options)) await pglite.query(statement);
        try {
          const result = await fn(direct);
          await pglite.query('COMMIT');
          return result;
        } catch (err) {
          await pglite.query('ROLLBACK').catch(() => {});
          throw err;
        }
      });
    },

    async listen(channel, onNotify) {
      const stop = await pglite.listen(channel, onNotify);
      return async () => stop();
    },

    close: () => exclusive(() => pglite.close()),
  };
}
