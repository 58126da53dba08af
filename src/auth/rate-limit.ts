import { RateLimiterPostgres, RateLimiterRes } from 'rate-limiter-flexible';
import type { Queryable } from '../db/index.ts';
import type { AuthSettings } from './settings.ts';

/**
 * Failed token requests, counted per client id and per remote address by rate-limiter-flexible's
 * RateLimiterPostgres in our own database (table auth_rate_limit, created by migration 002), so
 * the limit holds across every server process and restart, on pg and on the embedded database
 * alike. Every attempt takes a point before its credentials are checked (one atomic upsert), and a
 * success gives it back: so only failures stay counted, and concurrent attempts cannot all pass a
 * check made before any of them is counted. A caller with no point left is refused at once (no
 * scrypt work for a flood), until the window passes.
 */
export interface FailureLimiter {
  /** Takes one attempt from both allowances; the seconds to wait when either has none left. */
  take(clientId: string | undefined, address: string): Promise<{ ok: true } | { ok: false; retryAfter: number }>;
  /** Gives back the point of an attempt that succeeded. */
  giveBack(clientId: string | undefined, address: string): Promise<void>;
}

/** The library's Postgres store speaks to a `pg`-like client; this one runs on our Database. */
function storeClientFor(db: Queryable): object {
  return {
    query: async (q: { text: string; values?: unknown[] }) => {
      const rows = await db.query(q.text, q.values ?? []);
      return { rows, rowCount: rows.length };
    },
  };
}

/**
 * `subject` names what is counted: `token` (a client id at the token endpoint) or `source` (a
 * webhook source's Basic credentials, where each attempt costs an scrypt verification).
 */
export function createFailureLimiter(db: Queryable, settings: AuthSettings, subject: 'token' | 'source' = 'token'): FailureLimiter {
  const common = {
    storeClient: storeClientFor(db),
    storeType: 'client',
    tableName: 'auth_rate_limit',
    tableCreated: true,
    clearExpiredByTimeout: true,
    duration: settings.failureWindowSeconds,
  };
  const perClient = new RateLimiterPostgres({ ...common, keyPrefix: `${subject}-client`, points: settings.failuresPerClient });
  const perAddress = new RateLimiterPostgres({ ...common, keyPrefix: `${subject}-address`, points: settings.failuresPerAddress });
  const limits = (clientId: string | undefined, address: string): [RateLimiterPostgres, string][] =>
    clientId ? [[perClient, clientId], [perAddress, address]] : [[perAddress, address]];

  return {
    async take(clientId, address) {
      const taken = await Promise.allSettled(limits(clientId, address).map(([limiter, key]) => limiter.consume(key)));
      // consume() rejects with a RateLimiterRes once over the limit: that is a refusal, not an error.
      const failure = taken.find((r) => r.status === 'rejected' && !(r.reason instanceof RateLimiterRes));
      if (failure) throw (failure as PromiseRejectedResult).reason;
      const refusals = taken.flatMap((r) => (r.status === 'rejected' ? [r.reason as RateLimiterRes] : []));
      if (refusals.length === 0) return { ok: true };
      // A refused attempt is not evaluated, so it gives back what it took (a refused consume counts
      // too): otherwise concurrent good requests would leave the client locked out.
      await Promise.all(limits(clientId, address).map(([limiter, key]) => limiter.reward(key, 1)));
      return { ok: false, retryAfter: Math.max(1, ...refusals.map((r) => Math.ceil(r.msBeforeNext / 1000))) };
    },
    async giveBack(clientId, address) {
      await Promise.all(limits(clientId, address).map(([limiter, key]) => limiter.reward(key, 1)));
    },
  };
}
