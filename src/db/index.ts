import { createEmbeddedDatabase } from './embedded.ts';
import { createPostgresDatabase } from './postgres.ts';
import type { Database } from './database.ts';

export type { Database, Queryable, QueryOptions, Row, IsolationLevel } from './database.ts';
export { migrate } from './migrate.ts';
export { DataDirectoryInUseError } from './lock.ts';

export interface DatabaseOptions {
  databaseUrl: string | undefined;
  dataDir: string;
  poolSize: number;
  /** PostgreSQL schema for our tables (created if missing); absent: the connection's default. */
  schema?: string;
  /**
   * PostgreSQL: a statement run outside a transaction (`query`) commits without waiting for the
   * WAL flush; a transaction still waits unless it asks not to. For a pool that runs bookkeeping
   * whose loss in a crash is harmless (delivery's leases and marks) one statement at a time, where
   * one round trip instead of three (BEGIN, the statement, COMMIT) is most of its latency.
   */
  asynchronousStatements?: boolean;
  /** The embedded database's thread died after start-up (see EmbeddedOptions.onLost). */
  onEmbeddedLost?: (err: Error) => void;
}

/** PostgreSQL when a URL is given, otherwise the embedded database under `dataDir`. */
export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  return options.databaseUrl
    ? createPostgresDatabase(options.databaseUrl, options.poolSize, { schema: options.schema, asynchronousStatements: options.asynchronousStatements })
    : createEmbeddedDatabase(options.dataDir, { onLost: options.onEmbeddedLost });
}
