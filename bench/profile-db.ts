import type { Database, Queryable } from '../src/db/index.ts';

/**
 * `inner` with every statement counted and timed by kind (its text, whitespace collapsed, cut at
 * `width` characters), for benches that report statements per unit of work and where time goes.
 */
export interface Profile {
  /** Kinds by total time, most first; resets the counters. */
  take(): { kind: string; count: number; ms: number }[];
}

export function profilingDatabase(inner: Database, width = 90): Database & Profile {
  let stats = new Map<string, { count: number; ms: number }>();
  const timed = async <T>(sql: string, run: () => Promise<T>): Promise<T> => {
    const kind = sql.replace(/\s+/g, ' ').trim().slice(0, width);
    const t0 = performance.now();
    try {
      return await run();
    } finally {
      const s = stats.get(kind) ?? stats.set(kind, { count: 0, ms: 0 }).get(kind)!;
      s.count++;
      s.ms += performance.now() - t0;
    }
  };
  return {
    kind: inner.kind,
    take() {
      const out = [...stats].map(([kind, s]) => ({ kind, ...s })).sort((a, b) => b.ms - a.ms);
      stats = new Map();
      return out;
    },
    query: (sql, params, options) => timed(sql, () => inner.query(sql, params, options)),
    transaction: (fn, options) =>
      inner.transaction((tx) => {
        const profiled: Queryable = { query: (sql, params, o) => timed(sql, () => tx.query(sql, params, o)) };
        return fn(profiled);
      }, options),
    listen: (channel, onNotify) => inner.listen(channel, onNotify),
    close: () => inner.close(),
  };
}
