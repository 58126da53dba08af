/**
 * "The database is unavailable": the one value every route answers a connection-class failure with
 * (a PostgreSQL restart or failover, pg_terminate_backend, a refused or reset connection). It is a
 * 503 with Retry-After in each surface's error shape: the request changed nothing that is not
 * atomic with it, and the same request can be sent again. The db layer throws it; the edges
 * (/fhir, /api, /admin) only render it.
 */
export class DatabaseUnavailable extends Error {
  readonly status = 503;
  /** What the answer's Retry-After says: the pool reconnects by itself within about this long. */
  readonly retryAfterSeconds = RETRY_AFTER_SECONDS;

  constructor(cause: unknown) {
    super('The database is unavailable; nothing was recorded. Retry shortly', { cause });
    this.name = 'DatabaseUnavailable';
  }
}

export const RETRY_AFTER_SECONDS = 2;

/**
 * SQLSTATE class 08 (connection exception), 57P01-57P03 (admin shutdown, crash shutdown, cannot
 * connect now), 53300 (too many connections): the connection, not the statement, failed.
 */
const CONNECTION_SQLSTATE = /^(08...|57P0[123]|53300)$/;
/** Node's socket errors, and pg's and pg-pool's own messages for a connection that went away. */
const CONNECTION_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
const CONNECTION_MESSAGE =
  /^(Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect|Client was closed and is not queryable|database ".*" is not currently accepting connections)/;

/** Whether `err` says the connection to the database failed (rather than the statement). */
export function isConnectionFailure(err: unknown): boolean {
  if (err instanceof DatabaseUnavailable) return true;
  if (typeof err !== 'object' || err === null) return false;
  const { code, message, errors } = err as { code?: unknown; message?: unknown; errors?: unknown };
  if (typeof code === 'string' && (CONNECTION_SQLSTATE.test(code) || CONNECTION_ERRNO.has(code))) return true;
  if (typeof message === 'string' && CONNECTION_MESSAGE.test(message)) return true;
  // Node reports a refused connection to every address of a name as one AggregateError.
  return Array.isArray(errors) && errors.length > 0 && errors.every(isConnectionFailure);
}

/** `err` as DatabaseUnavailable when it is a connection failure, else unchanged. */
export function asUnavailable(err: unknown): unknown {
  return err instanceof DatabaseUnavailable || !isConnectionFailure(err) ? err : new DatabaseUnavailable(err);
}

/** The DatabaseUnavailable behind `err`, if any (also when a layer wrapped it as a cause). */
export function databaseUnavailable(err: unknown): DatabaseUnavailable | undefined {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof DatabaseUnavailable) return e;
    if (isConnectionFailure(e)) return new DatabaseUnavailable(e);
  }
  return undefined;
}
