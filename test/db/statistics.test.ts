import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keepStatisticsFresh } from '../../src/db/statistics.ts';
import { startTestApp } from '../support/app.ts';
import type { TestApp } from '../support/app.ts';
import { serverRepo } from '../support/billing.ts';
import { claim } from '../support/fixtures.ts';
import { fanOutAllEvents } from '../../src/subscriptions/store.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const statsRows = async (): Promise<number> =>
  Number(
    (await t.db.query<{ n: string }>(`SELECT count(*)::text AS n FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'search_token'`))[0].n,
  );

/** `n` Claims in one transaction; on PostgreSQL its row counts reach pg_stat at commit rather than seconds later. */
async function writeClaims(n: number, from: number): Promise<void> {
  await serverRepo(t).withTransaction(async (tx) => {
    for (let i = 0; i < n; i++) await tx.createResource(claim('Patient/p1', `stats-${from + i}`));
    if (t.db.kind === 'postgres') await tx.conn.query('SELECT pg_stat_force_next_flush()');
  });
}

describe('keepStatisticsFresh', () => {
  it('analyses once enough rows changed, and not again until more do', async () => {
    const keeper = await keepStatisticsFresh(t.db, { intervalMs: 3_600_000, minChanges: 50, fraction: 0.1 });
    try {
      expect(await keeper.runOnce()).toBeUndefined(); // nothing written yet
      expect(await statsRows()).toBe(0);

      await writeClaims(80, 0);
      const pass = await keeper.runOnce();
      expect(pass?.tables).toBeGreaterThan(5);
      expect(pass?.changes).toBeGreaterThanOrEqual(50);
      expect(await statsRows()).toBeGreaterThan(0);

      expect(await keeper.runOnce()).toBeUndefined(); // analysed: nothing changed since

      await writeClaims(10, 80); // below 50 + 10% of the rows now known
      expect(await keeper.runOnce()).toBeUndefined();
    } finally {
      await keeper.stop();
    }
  });

  it('vacuums the fan-out queue at every pass, so finding its oldest row stays a few pages', async () => {
    // 20,000 writes' events recorded and fanned out (to no subscription): deleted, not vacuumed.
    await t.db.query(`INSERT INTO subscription_event_pending (events, occurred_at)
                      SELECT '[{"tenant": "default", "subscriptions": []}]'::jsonb, now() FROM generate_series(1, 20000)`);
    await fanOutAllEvents(t.db);
    await t.db.query(`INSERT INTO subscription_event_pending (events, occurred_at) VALUES ('[]'::jsonb, now())`);
    const pagesToFindTheOldest = async (): Promise<number> => {
      const [row] = await t.db.query<{ 'QUERY PLAN': [{ Plan: { 'Shared Hit Blocks': number; 'Shared Read Blocks': number } }] }>(
        'EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT id FROM subscription_event_pending ORDER BY id LIMIT 1');
      const { Plan: plan } = row['QUERY PLAN'][0];
      return plan['Shared Hit Blocks'] + plan['Shared Read Blocks'];
    };
    await pagesToFindTheOldest(); // the first scan marks the dead entries; the second is the steady cost
    const before = await pagesToFindTheOldest();
    expect(before).toBeGreaterThan(40); // the index's leaf pages of 20,000 dead entries
    const keeper = await keepStatisticsFresh(t.db, { intervalMs: 0 });
    let after = before;
    try {
      // VACUUM removes only rows deleted before every open transaction began; on PostgreSQL other
      // test files' transactions run in the same database, so a pass may have to come again.
      for (const deadline = Date.now() + 30_000; after > 5 && Date.now() < deadline; ) {
        await keeper.runOnce();
        after = await pagesToFindTheOldest();
        if (after > 5) await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await keeper.stop();
    }
    expect(after).toBeLessThanOrEqual(5);
    await fanOutAllEvents(t.db);
  });

  it('stops cleanly with no pass in flight', async () => {
    const keeper = await keepStatisticsFresh(t.db, { intervalMs: 10 });
    await keeper.stop();
  });
});
