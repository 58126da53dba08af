/**
 * `npm run bench:ops`: the operator read models (src/ops/) on a large journal, as the console pages
 * it. Seeds BENCH_EVENTS inbound events (default 500,000: 98% processed, 1% failed, 1% unmatched,
 * over 30 days, three sources) and BENCH_ATTEMPTS delivery attempts (default 200,000) for one
 * subscription in a fresh schema of DATABASE_URL (default the local `test` database), then times each
 * query the console makes: median and p95 of 30 runs, in ms.
 */
import { randomBytes } from 'node:crypto';
import { migrate, openDatabase } from '../src/db/index.ts';
import { overview } from '../src/ops/money.ts';
import { deliveryHealth, listInboundEvents, listNotifications } from '../src/ops/store.ts';

const events = Number(process.env.BENCH_EVENTS ?? 500_000);
const attempts = Number(process.env.BENCH_ATTEMPTS ?? 200_000);
const schema = `bench_ops_${randomBytes(4).toString('hex')}`;
const db = await openDatabase({ databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test', schema, dataDir: 'memory://', poolSize: 4 });
try {
  await migrate(db);
  const t0 = Date.now();
  await db.query(
    `INSERT INTO inbound_event (tenant_id, source, event_type, dedupe_key, content_hash, body, status, response, received_at)
     SELECT 'default', (ARRAY['cair', 'instamed', 'tyro'])[1 + g % 3], 'patient-payment', 'k' || g, 'h', '{}',
            CASE WHEN g % 100 = 0 THEN 'failed' WHEN g % 100 = 1 THEN 'unmatched' ELSE 'processed' END,
            '{"status":200,"body":{}}', now() - make_interval(secs => ($1 - g) * (30 * 86400.0 / $1))
       FROM generate_series(1, $1) g`,
    [events],
  );
  await db.query(`INSERT INTO subscription_registry (tenant_id, id, status, resource_type, config) VALUES ('default', 's1', 'active', 'Claim', '{}')`);
  await db.query(
    `INSERT INTO subscription_notification (tenant_id, subscription_id, seq, event_number, type, webhook_id, status, occurred_at)
     SELECT 'default', 's1', g, g, 'event-notification', 'w' || g, 'delivered', now() - make_interval(secs => ($1 - g) * (30 * 86400.0 / $1)) FROM generate_series(1, $1) g`,
    [attempts],
  );
  await db.query(
    `INSERT INTO delivery_attempt (tenant_id, subscription_id, seq, attempted_at, http_status, latency_ms)
     SELECT 'default', 's1', g, now() - make_interval(secs => ($1 - g) * (30 * 86400.0 / $1)), CASE WHEN g % 20 = 0 THEN 500 ELSE 200 END, 20 + g % 80
       FROM generate_series(1, $1) g`,
    [attempts],
  );
  await db.query('ANALYZE');
  console.log(`seeded ${events} events and ${attempts} attempts in ${Date.now() - t0} ms`);

  const deep = String(Math.floor(events / 2));
  const since = new Date(Date.now() - 3 * 86400_000).toISOString();
  const cases: [string, () => Promise<unknown>][] = [
    ['journal: newest page (25)', () => listInboundEvents(db, { tenantId: 'default', limit: 25 })],
    ['journal: a page half-way back', () => listInboundEvents(db, { tenantId: 'default', before: deep, limit: 25 })],
    ['journal: status=failed (1%)', () => listInboundEvents(db, { tenantId: 'default', status: 'failed', limit: 25 })],
    ['journal: source=tyro, last 3 days', () => listInboundEvents(db, { tenantId: 'default', source: 'tyro', since, limit: 25 })],
    ['deliveries: notifications page (20)', () => listNotifications(db, { tenantId: 'default', subscriptionId: 's1', limit: 20 })],
    ['deliveries: health, 24 hours', () => deliveryHealth(db, 'default', 's1', 24)],
    ['overview, 24 hours', () => overview(db, 'default', 24)],
  ];
  console.log('| query | median ms | p95 ms |\n| --- | --- | --- |');
  for (const [name, run] of cases) {
    const times: number[] = [];
    for (let i = 0; i < 30; i++) {
      const start = performance.now();
      await run();
      times.push(performance.now() - start);
    }
    times.sort((a, b) => a - b);
    console.log(`| ${name} | ${times[15].toFixed(1)} | ${times[28].toFixed(1)} |`);
  }
} finally {
  if (process.env.BENCH_KEEP) console.log(`kept schema ${schema}`);
  else await db.query(`DROP SCHEMA ${schema} CASCADE`).catch(() => undefined);
  await db.close();
}
