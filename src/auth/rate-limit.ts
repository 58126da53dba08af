import { RateLimiterPostgres, RateLimiterRes } from 'rate-limiter-flexible';
import type { Database } from '../db/index.ts';
import type { AuthSettings } from './settings.ts';

/**
 * Failed token requests, counted per client id and per remote address by rate-limiter-flexible's
 * RateLimiterPostgres in our own database (table auth_rate_limit, created by migration 002), so
 * the limit holds across every server process and restart, on pg and on the embedded database
 * alike. Only failures count; a caller over either limit is refused before its credentials are
 * even checked (no scrypt work for a flood), until the window passes.
 */
export interface FailureLimiter {
  /** Seconds to wait when the client or the address is over its limit; undefined when neither is. */
  blockedFor(clientId: string | undefined, address: string): Promise<number | undefined>;
  /** Counts one failure against both. */
  recordFailure(clientId: string | undefined, address: string): Promise<void>;
}

/** The library's Postgres store speaks to a `pg`-like client; this one runs on our Database. */
function storeClientFor(db: Database): object {
  return {
    query: async (q: { text: string; values?: unknown[] }) => {
      const rows = await db.query(q.text, q.values ?? []);
      return { rows, rowCount: rows.length };
    },
  };
}

export function createFailureLimiter(db: Database, settings: AuthSettings): FailureLimiter {
  const common = {
    storeClient: storeClientFor(db),
    storeType: 'client',
    tableName: 'auth_rate_limit',
    tableCreated: true,
    clearExpiredByTimeout: true,
    duration: settings.failureWindowSeconds,
  };
  const perClient = new RateLimiterPostgres({ ...common, keyPrefix: 'token-client', points: settings.failuresPerClient });
  const perAddress = new RateLimiterPostgres({ ...common, keyPrefix: 'token-address', points: settings.failuresPerAddress });

  const over = async (limiter: RateLimiterPostgres, key: string): Promise<number | undefined> => {
    const res = await limiter.get(key);
    return res && res.consumedPoints >= limiter.points ? Math.max(1, Math.ceil(res.msBeforeNext / 1000)) : undefined;
  };

  return {
    async blockedFor(clientId, address) {
      const waits = await Promise.all([clientId ? over(perClient, clientId) : undefined, over(perAddress, address)]);
      const longest = Math.max(...waits.map((w) => w ?? 0));
      return longest > 0 ? longest : undefined;
    },
    async recordFailure(clientId, address) {
      // consume() rejects with a RateLimiterRes once over the limit: that is expected, not an error.
      const swallowOverLimit = (err: unknown): void => {
        if (!(err instanceof RateLimiterRes)) throw err;
      };
      await Promise.all([
        clientId ? perClient.consume(clientId).catch(swallowOverLimit) : undefined,
        perAddress.consume(address).catch(swallowOverLimit),
      ]);
    },
  };
}
