import type { Database } from './database.ts';

/**
 * Keeps planner statistics fresh where nothing else does: the embedded database has no
 * autovacuum, and PostgreSQL may run with it off. Plans are built not to depend on statistics
 * (see fhir/search/query.ts and migration 009), but everything else the planner decides (billing,
 * subscriptions, history) is better with them, and row counts that are years stale mislead it.
 *
 * Every `intervalMs` it asks how many rows changed since the last ANALYZE and analyses when that
 * passes `minChanges` plus `fraction` of the rows there were then (autovacuum's own rule). It runs
 * one table at a time, each its own statement, so on the embedded database (one connection, one
 * lock) requests wait for at most one table's sample, never for the whole pass.
 *
 * Each pass also vacuums the queue tables that churn, whatever the count: every write that matches
 * a Subscription inserts a row into subscription_event_pending and the fan-out deletes it, oldest
 * first, so without VACUUM each fan-out walks every index entry of every row ever fanned out
 * (22 ms after 200,000, growing). Their live rows are few, so the VACUUM is short.
 */
export interface StatisticsOptions {
  /** 0: no timer (runOnce only). */
  intervalMs?: number;
  minChanges?: number;
  fraction?: number;
  /** Told of each pass (tables analysed, changes seen) and of failures; a failure never stops the timer. */
  onPass?: (pass: { tables: number; changes: number }) => void;
  onError?: (err: unknown) => void;
}

export interface StatisticsKeeper {
  /** One pass now (VACUUM of the churning queue tables, and ANALYZE if due); what the timer runs. */
  runOnce(): Promise<{ tables: number; changes: number } | undefined>;
  /** Stops the timer and waits for a pass in flight. */
  stop(): Promise<void>;
}

const DEFAULTS = { intervalMs: 30_000, minChanges: 200, fraction: 0.1 };
/**
 * Rewritten all the time, with few rows alive at once: the fan-out's inbox (inserted and deleted,
 * migration 023), and the subscriptions' counters and delivery leases (a version per fan-out and
 * per run, 021 and 028), which every claim reads.
 */
const CHURNING_TABLES = ['subscription_event_pending', 'subscription_counter', 'subscription_lease'];

export async function keepStatisticsFresh(db: Database, options: StatisticsOptions = {}): Promise<StatisticsKeeper> {
  const { intervalMs, minChanges, fraction } = { ...DEFAULTS, ...options };
  // PostgreSQL with autovacuum on needs nothing from us.
  const needed = db.kind === 'embedded' || (await autovacuumIsOff(db));
  const changes = db.kind === 'embedded' ? outboxCounter(db) : modifiedSinceAnalyze(db);
  let rowsAtLastAnalyze = 0;
  let inFlight: Promise<unknown> = Promise.resolve();

  async function pass(): Promise<{ tables: number; changes: number } | undefined> {
    for (const name of CHURNING_TABLES) await db.query(`VACUUM ${quoteIdentifier(name)}`);
    const changed = await changes.read();
    if (changed < minChanges + fraction * rowsAtLastAnalyze) return undefined;
    const tables = await db.query<{ name: string }>(
      `SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename`,
    );
    for (const { name } of tables) await db.query(`ANALYZE ${quoteIdentifier(name)}`);
    changes.reset();
    const rows = await db.query<{ n: string }>(
      `SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::text AS n FROM pg_class c
        JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = current_schema() AND c.relkind = 'r'`,
    );
    rowsAtLastAnalyze = Number(rows[0].n);
    return { tables: tables.length, changes: changed };
  }

  const runOnce = (): Promise<{ tables: number; changes: number } | undefined> => {
    const run = inFlight.then(pass, pass);
    inFlight = run.catch(() => {});
    return run;
  };

  const timer = needed && intervalMs > 0
    ? setInterval(() => {
        runOnce().then(
          (result) => result && options.onPass?.(result),
          (err) => options.onError?.(err),
        );
      }, intervalMs)
    : undefined;
  timer?.unref();

  return {
    runOnce,
    async stop() {
      if (timer) clearInterval(timer);
      await inFlight;
    },
  };
}

interface ChangeCounter {
  read(): Promise<number>;
  reset(): void;
}

/**
 * Embedded: its statistics collector does not count row changes, but every resource write appends
 * to the outbox, whose sequence only grows. Resource writes are what grows the tables searched.
 */
function outboxCounter(db: Database): ChangeCounter {
  let mark: number | undefined;
  let last = 0;
  return {
    async read() {
      const rows = await db.query<{ n: string }>(`SELECT last_value::text AS n FROM outbox_seq_seq`);
      last = Number(rows[0].n);
      // Nothing analysed yet: every write so far counts.
      return last - (mark ?? 0);
    },
    reset() {
      mark = last;
    },
  };
}

/** PostgreSQL: rows changed since each table's last ANALYZE, as the server counts them (all processes). */
function modifiedSinceAnalyze(db: Database): ChangeCounter {
  return {
    async read() {
      const rows = await db.query<{ n: string }>(
        `SELECT coalesce(sum(n_mod_since_analyze), 0)::text AS n FROM pg_stat_user_tables WHERE schemaname = current_schema()`,
      );
      return Number(rows[0].n);
    },
    reset() {},
  };
}

async function autovacuumIsOff(db: Database): Promise<boolean> {
  const rows = await db.query<{ setting: string }>(`SELECT current_setting('autovacuum') AS setting`);
  return rows[0].setting === 'off';
}

function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
