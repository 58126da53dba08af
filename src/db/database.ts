/**
 * One interface over both databases: a `pg` Pool (production, CI) and embedded PGlite (zero-setup).
 * Code above this layer never knows which one it talks to.
 */
export type Row = Record<string, unknown>;

export interface QueryOptions {
  /**
   * Keep the statement prepared on the connection, so that PostgreSQL parses and plans it once, not
   * at every call. For hot statements of fixed text only (each distinct text stays prepared on
   * every connection that ran it); the embedded database ignores it.
   */
  prepare?: boolean;
}

export interface Queryable {
  /** Runs one parameterised statement and returns its rows. */
  query<R = Row>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<R[]>;
}

export type IsolationLevel = 'read committed' | 'repeatable read' | 'serializable';

export interface TransactionOptions {
  isolation?: IsolationLevel;
  /**
   * false: COMMIT does not wait for the WAL flush. Only for bookkeeping whose loss in a crash is
   * harmless (a delivery lease, a delivery mark: at worst a notification is sent again); never
   * for a resource write or anything that moves money.
   */
  synchronousCommit?: boolean;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'embedded';
  /**
   * Runs `fn` in one transaction: COMMIT when it resolves, ROLLBACK when it throws.
   * On PostgreSQL a serialization failure or deadlock re-runs `fn` (so `fn` must be re-runnable);
   * on the embedded database transactions are serialized, so they never conflict.
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /** Calls `onNotify` for every NOTIFY on `channel`; returns a function that stops listening. */
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** SQLSTATEs after which re-running the whole transaction is correct. */
export const RETRYABLE_SQLSTATES = new Set(['40001', '40P01']);

export function isRetryable(err: unknown): boolean {
  return typeof err === 'object' && err !== null && RETRYABLE_SQLSTATES.has((err as { code?: string }).code ?? '');
}

/** `sessionAsynchronous`: the connection's own default is synchronous_commit off (see DatabaseOptions). */
export function beginStatements(options?: TransactionOptions, sessionAsynchronous = false): string[] {
  const isolation = options?.isolation ?? 'read committed';
  const statements = [`BEGIN ISOLATION LEVEL ${isolation.toUpperCase()}`];
  const synchronous = options?.synchronousCommit ?? true;
  if (synchronous === sessionAsynchronous) statements.push(`SET LOCAL synchronous_commit TO ${synchronous ? 'on' : 'off'}`);
  return statements;
}
