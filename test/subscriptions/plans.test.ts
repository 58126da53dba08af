import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Queryable } from '../../src/db/index.ts';
import { FULL_ACCESS } from '../../src/fhir/access.ts';
import { PostgresRepository } from '../../src/fhir/repository.ts';
import { subscriptionObserver } from '../../src/subscriptions/index.ts';
import { claimRuns, finishRun } from '../../src/subscriptions/runs.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { claim } from '../support/fixtures.ts';
import { startReceiver } from '../support/receiver.ts';
import type { Receiver } from '../support/receiver.ts';
import { classicSubscription } from '../support/subscriptions.ts';
import { fanOutAllEvents } from '../../src/subscriptions/store.ts';
import { startTestWorker } from '../support/worker.ts';

// Delivery's statements cost what a run holds, not what the subscription ever had, on tables
// nobody has analysed (the embedded database has no autovacuum; PostgreSQL may run without it).
// Asserted on the plans (how many rows each step read and threw away), never on time. A finish
// once filtered every notification the subscription ever had: 3,600 rows read per run.

const DELIVERED = 600;
let t: TestApp;
let receiver: Receiver;

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  Plans?: PlanNode[];
}

const nodesOf = (node: PlanNode): PlanNode[] => [node, ...(node.Plans ?? []).flatMap(nodesOf)];

/** Runs each statement `work` sends under EXPLAIN ANALYZE, in a transaction rolled back; their plans. */
async function plansOf(work: (conn: Queryable) => Promise<unknown>): Promise<PlanNode[]> {
  const plans: PlanNode[] = [];
  await t.db
    .transaction(async (tx) => {
      const explaining: Queryable = {
        async query<R>(sql: string, params?: readonly unknown[]): Promise<R[]> {
          const [row] = await tx.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, params);
          const plan = row['QUERY PLAN'];
          plans.push((typeof plan === 'string' ? JSON.parse(plan) : plan)[0].Plan);
          return [{ mine: 0 }] as R[];
        },
      };
      await work(explaining);
      throw new Error('roll back');
    })
    .catch((err: Error) => {
      if (err.message !== 'roll back') throw err;
    });
  return plans;
}

/** Rows the statement's scans of the notification queue read (returned or filtered out). */
function queueRowsRead(plans: PlanNode[]): number {
  return plans
    .flatMap(nodesOf)
    .filter((n) => n['Relation Name'] === 'subscription_notification')
    .reduce((sum, n) => sum + ((n['Actual Rows'] ?? 0) + (n['Rows Removed by Filter'] ?? 0) + (n['Rows Removed by Index Recheck'] ?? 0)) * (n['Actual Loops'] ?? 1), 0);
}

async function writeClaims(from: number, count: number): Promise<void> {
  const repo = new PostgresRepository(t.db, { tenantId: 'default', access: FULL_ACCESS, baseUrl: 'http://test/fhir' }, { observer: subscriptionObserver({ allowPrivateNetworks: true }) });
  await repo.withTransaction(async (tx) => {
    for (let i = from; i < from + count; i++) await tx.createResource({ ...claim('Patient/p1'), identifier: [{ system: 'plans', value: `c${i}` }] });
  });
}

beforeAll(async () => {
  t = await startTestApp({ allowPrivateNetworks: true });
  receiver = await startReceiver();
  const token = await t.token();
  const sub = classicSubscription(`Claim?identifier=plans|`, `${receiver.url}/plans`);
  await request(t.app).post('/fhir/Subscription').auth(token, { type: 'bearer' }).send(sub).expect(201);
  // The writes as the API makes them (with the Subscriptions observer), in one transaction for speed.
  await writeClaims(0, DELIVERED);
  const worker = await startTestWorker(t.db, { runSize: 100 });
  await receiver.waitFor(DELIVERED, 120_000);
  await worker.stop();
}, 240_000);
afterAll(async () => {
  await receiver.close();
  await t.close();
});

describe(`a subscription with ${DELIVERED} delivered notifications and no statistics`, () => {
  it('the queue has never been analysed', async () => {
    const stats = await t.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'subscription_notification'`,
    );
    expect(stats[0].n).toBe(0);
  });

  it('claiming with nothing due reads next to nothing of the queue', async () => {
    const plans = await plansOf((conn) => claimRuns(conn, 16, 100, 5));
    expect(plans).toHaveLength(1);
    expect(queueRowsRead(plans)).toBeLessThan(50);
  });

  it('finishing a run and leasing the next reads the two runs, not the history or the backlog behind them', async () => {
    await writeClaims(DELIVERED, 1000);
    await fanOutAllEvents(t.db);
    const [run] = await t.db.transaction((tx) => claimRuns(tx, 16, 100, 5));
    const delivered = run.map((n) => ({ seqs: [n.seq], result: { httpStatus: 200, latencyMs: 1 }, outcome: { next: 'delivered' as const } }));
    const plans = await plansOf((conn) => finishRun(conn, run, delivered, 100, 5));
    expect(plans).toHaveLength(1);
    // The run finished, the next run's 100 (read for the run, then for its rows) and the head:
    // about 300. With the range a filter, the next run's rows were found among all 1,000 pending.
    expect(queueRowsRead(plans)).toBeLessThan(500);
    expect((await finishRun(t.db, run, delivered, 0, 5)).fenced).toBe(false);
  });

  // The embedded database keeps no such counts.
  it.skipIf(!process.env.DATABASE_URL)('a run of 100 is leased on one lease row and its notifications are written once, when finished (migration 028)', async () => {
    await writeClaims(DELIVERED + 1000, 100);
    await fanOutAllEvents(t.db);
    const updates = async (): Promise<{ notifications: number; leases: number }> => {
      await t.db.query('SELECT pg_stat_force_next_flush()');
      const rows = await t.db.query<{ relname: string; n: string }>(
        `SELECT relname, n_tup_upd AS n FROM pg_stat_user_tables
          WHERE schemaname = current_schema() AND relname IN ('subscription_notification', 'subscription_lease')`);
      const of = (name: string) => Number(rows.find((r) => r.relname === name)!.n);
      return { notifications: of('subscription_notification'), leases: of('subscription_lease') };
    };
    const before = await updates();
    const [run] = await t.db.transaction((tx) => claimRuns(tx, 16, 100, 5));
    expect(run).toHaveLength(100);
    const leased = await updates();
    expect(leased.notifications - before.notifications).toBe(0);
    expect(leased.leases - before.leases).toBe(1);
    const delivered = [{ seqs: run.map((n) => n.seq), result: { httpStatus: 200, latencyMs: 1 }, outcome: { next: 'delivered' as const } }];
    expect((await finishRun(t.db, run, delivered, 0, 5)).fenced).toBe(false);
    const finished = await updates();
    expect(finished.notifications - leased.notifications).toBe(100);
    expect(finished.leases - leased.leases).toBe(1);
  });

  it('leasing a run of 100 reads each of its rows about once', async () => {
    await writeClaims(DELIVERED + 1100, 100);
    await fanOutAllEvents(t.db);
    const plans = await plansOf((conn) => claimRuns(conn, 16, 100, 5));
    // The head, the run behind it, and the rows leased: about 200. Leased row by row against the
    // run, the plan scanned the run once per row (5,000 and more).
    expect(queueRowsRead(plans)).toBeLessThan(400);
  });
});
