/**
 * `npm run bench:payments`: Cair patient payments (shared/seeds/000) per second through HTTP, beside
 * the database's own rate for the same SQL, at BENCH_PAYMENT_CLIENTS (8,32,128) clients.
 *
 *   DATABASE_URL            default postgres://postgres@127.0.0.1:5432/test
 *   BENCH_PAYMENTS          measured payments per client count (default 3000), after as many
 *                           unmeasured ones as there are clients
 *   BENCH_PAYMENT_CLIENTS   default 8,32,128
 *   BENCH_ANALYZE           1 (default): ANALYZE after seeding, as a bulk load should be; 0: measure
 *                           on unanalysed tables (where, today, each identifier lookup of a payment
 *                           takes seconds at a few thousand resources: the planner's nested loop)
 *
 * 1. Seeds, through HTTP, one Patient, Claim and ClaimResponse (patient liability 100.00) per bill:
 *    every payment goes to a bill of its own, so no two payments wait for one lock.
 * 2. Records the SQL of one payment: the real app in this process over a recording Database
 *    (sql-replay.ts), after one unrecorded payment (caches warm), on a bill of its own.
 * 3. For each client count: N payments through HTTP to the server (a child process); then the same
 *    number of replays of the recorded SQL, each with another bill's ids, through a pg Pool of the
 *    server's size (DATABASE_POOL_SIZE, 20) with as many concurrent replays as HTTP clients.
 * Prints rates, p50/p99 and the ratio HTTP/raw; results go to bench/results/payments.md.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createApp } from '../src/app.ts';
import { createPostgresDatabase } from '../src/db/postgres.ts';
import { createLogger } from '../src/logger.ts';
import { claim } from '../test/support/fixtures.ts';
import { HttpClient, percentile } from './load.ts';
import type { Target } from './load.ts';
import { fmt, log } from './report.ts';
import { startServer } from './server.ts';
import { describe, recordingDatabase, replay, substitute } from './sql-replay.ts';

const num = (name: string, fallback: number): number => Number(process.env[name] || fallback);
const config = {
  databaseUrl: process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test',
  payments: num('BENCH_PAYMENTS', 3000),
  analyze: process.env.BENCH_ANALYZE !== '0',
  clients: (process.env.BENCH_PAYMENT_CLIENTS || '8,32,128').split(',').map(Number),
  poolSize: 20,
};
const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const schema = `bench_pay_${randomBytes(6).toString('hex')}`;
const credentials = { clientId: 'bench', clientSecret: randomBytes(24).toString('hex') };
const WEBHOOK = '/api/webhooks/patient-payment';
const MEMBER = { coding: [{ system: 'http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudicationDiscriminator', code: 'memberliability' }] };

interface Bill {
  billId: string;
  patientId: string;
  claimId: string;
  claimResponseId: string;
}

interface Rate {
  count: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
}

/** `count` tasks over `concurrency` loops; rate over the whole run, latency per task. */
async function runCount(count: number, concurrency: number, task: (i: number) => Promise<void>): Promise<Rate> {
  const latencies = new Float64Array(count);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < count; i = next++) {
        const start = performance.now();
        await task(i);
        latencies[i] = performance.now() - start;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort();
  return { count, perSecond: count / seconds, p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99) };
}

async function token(baseUrl: string): Promise<Target> {
  const client = new HttpClient({ baseUrl }, 1);
  const res = await client.request('POST', '/api/token', JSON.stringify(credentials), true);
  client.close();
  if (res.status !== 200) throw new Error(`POST /api/token answered ${res.status} ${res.body}`);
  return { baseUrl, authorization: `Bearer ${(JSON.parse(res.body!) as { accessToken: string }).accessToken}` };
}

async function create(client: HttpClient, resource: object): Promise<string> {
  const res = await client.request('POST', `/fhir/${(resource as { resourceType: string }).resourceType}`, JSON.stringify(resource), true);
  if (res.status !== 201) throw new Error(`create answered ${res.status}: ${res.body?.slice(0, 300)}`);
  return (JSON.parse(res.body!) as { id: string }).id;
}

async function seedBills(target: Target, count: number): Promise<Bill[]> {
  const client = new HttpClient(target, 16);
  const bills: Bill[] = [];
  const t0 = performance.now();
  await runCount(count, 16, async () => {
    const billId = randomUUID();
    const patientId = await create(client, { resourceType: 'Patient', name: [{ family: 'Payer' }] });
    const claimId = await create(client, claim(`Patient/${patientId}`, billId));
    const claimResponseId = await create(client, {
      resourceType: 'ClaimResponse',
      status: 'active',
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
      use: 'claim',
      patient: { reference: `Patient/${patientId}` },
      created: '2024-05-02T10:00:00Z',
      insurer: { display: 'Payer' },
      request: { reference: `Claim/${claimId}` },
      outcome: 'complete',
      total: [{ category: MEMBER, amount: { value: 100, currency: 'USD' } }],
    });
    bills.push({ billId, patientId, claimId, claimResponseId });
  });
  client.close();
  log(`seeded ${fmt(count)} bills (Patient, Claim, ClaimResponse) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return bills;
}

function paymentBody(bill: Bill): string {
  return JSON.stringify({ billId: bill.billId, paymentAmount: 10.5, paymentDate: '2024-06-01', paymentMethod: 'card', paymentTraceId: randomUUID() });
}

async function pay(client: HttpClient, bill: Bill): Promise<void> {
  const res = await client.request('POST', WEBHOOK, paymentBody(bill), true);
  if (res.status !== 200) throw new Error(`payment answered ${res.status}: ${res.body?.slice(0, 300)}`);
}

/** The statements of one payment, recorded from the real app in this process. */
async function recordPayment(target: Target, warm: Bill, recorded: Bill) {
  const db = recordingDatabase(await createPostgresDatabase(config.databaseUrl, 4, { schema }));
  const app = createApp({ db, logger: createLogger('silent') });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const client = new HttpClient({ ...target, baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }, 1);
  try {
    await pay(client, warm);
    db.take();
    await pay(client, recorded);
    return db.take();
  } finally {
    client.close();
    await new Promise((r) => server.close(r));
    await db.close();
  }
}

function rss(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0; // the process is gone
  }
}

async function main(): Promise<void> {
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: config.poolSize, options: `-c search_path=${schema}` });
  pool.on('error', () => {});
  mkdirSync(RESULTS_DIR, { recursive: true });
  const server = await startServer({
    databaseUrl: config.databaseUrl,
    schema,
    logFile: `${RESULTS_DIR}payments-server.log`,
    env: { BOOTSTRAP_CLIENT_ID: credentials.clientId, BOOTSTRAP_CLIENT_SECRET: credentials.clientSecret, TOKEN_TTL_SECONDS: '86400' },
  });
  const cleanup = async (): Promise<void> => {
    await server.stop();
    await pool.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`).catch(() => {});
    await pool.end();
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void cleanup().finally(() => process.exit(130)));
  }
  const lines: string[] = [];
  try {
    log(`# payments: ${os.cpus().length} cores, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    const target = await token(server.baseUrl);
    const perLevel = (c: number) => config.payments + c;
    const needed = 3 + 2 * config.clients.reduce((sum, c) => sum + perLevel(c), 0);
    const bills = await seedBills(target, needed);
    if (config.analyze) {
      const tables = await pool.query<{ name: string }>(`SELECT tablename AS name FROM pg_tables WHERE schemaname = $1`, [schema]);
      for (const { name } of tables.rows) await pool.query(`ANALYZE ${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(name)}`);
    }
    log(config.analyze ? 'tables analysed after seeding' : 'tables NOT analysed (BENCH_ANALYZE=0)');
    const statements = await recordPayment(target, bills.pop()!, bills[bills.length - 1]);
    const recorded = bills.pop()!;
    log(`one payment's SQL: ${describe(statements)}`);
    const known = (to: Bill) =>
      new Map([
        [recorded.billId, to.billId],
        [recorded.patientId, to.patientId],
        [recorded.claimId, to.claimId],
        [recorded.claimResponseId, to.claimResponseId],
      ]);
    const timings: number[] = [];
    await replay(pool, substitute(statements, known(bills.pop()!)), timings);
    const slowest = timings.map((ms, i) => ({ ms, i })).sort((a, b) => b.ms - a.ms).slice(0, 3);
    const where = slowest.map(({ ms, i }) => `${ms.toFixed(1)} ms: ${statements[i].sql.replace(/\s+/g, ' ').slice(0, 160)}`);
    log(`one replay alone took ${timings.reduce((a, b) => a + b, 0).toFixed(1)} ms; slowest statements:\n  ${where.join('\n  ')}`);
    lines.push('| clients | HTTP payments/s | p50 | p99 | raw SQL/s | p50 | p99 | HTTP/raw | server RSS max |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const clients of config.clients) {
      const httpBills = bills.splice(0, perLevel(clients));
      const rawBills = bills.splice(0, perLevel(clients));
      const client = new HttpClient(target, clients);
      await runCount(clients, clients, (i) => pay(client, httpBills[config.payments + i]));
      let maxRss = 0;
      const sampler = setInterval(() => (maxRss = Math.max(maxRss, rss(server.pid))), 200);
      const http = await runCount(config.payments, clients, (i) => pay(client, httpBills[i])).finally(() => {
        clearInterval(sampler);
        client.close();
      });
      const scripts = rawBills.map((b) => substitute(statements, known(b)));
      await runCount(clients, clients, (i) => replay(pool, scripts[config.payments + i]));
      const raw = await runCount(config.payments, clients, (i) => replay(pool, scripts[i]));
      const ratio = http.perSecond / raw.perSecond;
      const f = (r: Rate) => `${fmt(r.perSecond)}/s p50 ${r.p50Ms.toFixed(1)} ms p99 ${r.p99Ms.toFixed(1)} ms`;
      log(`${clients} clients: HTTP ${f(http)} | raw ${f(raw)} | ratio ${ratio.toFixed(2)} | server RSS max ${maxRss.toFixed(0)} MB | load ${os.loadavg()[0].toFixed(1)}`);
      lines.push(
        `| ${clients} | ${fmt(http.perSecond)} | ${http.p50Ms.toFixed(1)} ms | ${http.p99Ms.toFixed(1)} ms | ${fmt(raw.perSecond)} | ${raw.p50Ms.toFixed(1)} ms | ${raw.p99Ms.toFixed(1)} ms | ${ratio.toFixed(2)} | ${maxRss.toFixed(0)} MB |`,
      );
    }
    const markdown = [
      `# Payments (${config.payments} per row, PostgreSQL, ${os.cpus().length} cores, load average at end ${os.loadavg()[0].toFixed(1)})`,
      '',
      `One payment's SQL: ${describe(statements)}. Tables ${config.analyze ? 'analysed after seeding' : 'not analysed'}.`,
      '',
      ...lines,
      '',
      "The recorded payment's statements (transaction number, text cut at 200 characters):",
      '',
      ...statements.map((st, i) => `${i + 1}. [${st.tx ?? '-'}] \`${st.sql.replace(/\s+/g, ' ').slice(0, 200)}\``),
      '',
    ].join('\n');
    writeFileSync(`${RESULTS_DIR}payments.md`, markdown);
    log(`written to bench/results/payments.md`);
  } catch (err) {
    console.error(err);
    console.error(`server log, last lines:\n${server.logTail(10)}`);
    throw err;
  } finally {
    await cleanup();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
