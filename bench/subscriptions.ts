/**
 * `npm run bench:subscriptions` (and the second half of `npm run bench`): notification delivery of
 * the real server on PostgreSQL.
 *
 * 1. Latency: one process running API and worker (as `npm start` does), one classic rest-hook
 *    Subscription, Claims created open-loop at BENCH_EVENTS_PER_SECOND (200) for BENCH_SECONDS
 *    after a warm-up (as in the other phases) that is not measured.
 *    Latency is from the moment the create's 201 reaches us (the commit happened just before the
 *    server answered) to the moment the receiver, in this process, has the notification.
 * 2. Throughput: an API-only process builds a backlog (with 1 subscription, and with 100
 *    subscriptions that all match), then a worker-only process drains it; deliveries/s is the
 *    backlog over the time to drain it.
 * The receiver answers 200 at once. Everything shares the machine's cores.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { CLAIM_ID_SYSTEM, claimResource } from './claims.ts';
import { HttpClient, percentile } from './load.ts';
import { fmt, log } from './report.ts';
import { startServer } from './server.ts';
import type { RunningServer } from './server.ts';

const num = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
const config = {
  databaseUrl: process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test',
  seconds: num('BENCH_SECONDS', 10),
  eventsPerSecond: num('BENCH_EVENTS_PER_SECOND', 200),
  backlog: num('BENCH_BACKLOG', 4000),
};
const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const credentials = { clientId: 'bench', clientSecret: randomBytes(24).toString('hex') };

interface Receiver {
  url: string;
  /** Arrival time (performance.now) of each notification, in order. */
  arrivals: number[];
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const arrivals: number[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      arrivals.push(performance.now());
      res.writeHead(200).end();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/hook`,
    arrivals,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

function serverEnv(): Record<string, string> {
  return {
    BOOTSTRAP_CLIENT_ID: credentials.clientId,
    BOOTSTRAP_CLIENT_SECRET: credentials.clientSecret,
    OUTBOUND_ALLOW_PRIVATE_NETWORKS: 'true',
    DELIVERY_CONCURRENCY: '32',
  };
}

async function authorization(baseUrl: string): Promise<string> {
  const res = await fetch(`${baseUrl}/api/token`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(credentials) });
  if (!res.ok) throw new Error(`token: ${res.status} ${await res.text()}`);
  return `Bearer ${(await res.json()).accessToken}`;
}

async function post(client: HttpClient, path: string, body: object): Promise<string> {
  const res = await client.request('POST', path, JSON.stringify(body), true);
  if (res.status !== 201) throw new Error(`POST ${path}: ${res.status} ${res.body}`);
  return JSON.parse(res.body!).id;
}

function subscription(endpoint: string, criteria = `Claim?identifier=${CLAIM_ID_SYSTEM}|`): object {
  return { resourceType: 'Subscription', status: 'requested', reason: 'bench', criteria, channel: { type: 'rest-hook', endpoint } };
}

async function waitUntil(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function latencyPhase(schema: string, receiver: Receiver): Promise<string> {
  const server = await startServer({ databaseUrl: config.databaseUrl, schema, logFile: `${RESULTS_DIR}server-subscriptions.log`, env: serverEnv() });
  try {
    const client = new HttpClient({ baseUrl: server.baseUrl, authorization: await authorization(server.baseUrl) }, 64);
    const patient = await post(client, '/fhir/Patient', { resourceType: 'Patient' });
    await post(client, '/fhir/Subscription', subscription(receiver.url));
    // Like the other phases, a warm-up (JIT, pool connections, first plans) is sent but not measured.
    const warmup = Math.round(Math.min(2, config.seconds / 5) * config.eventsPerSecond);
    const total = warmup + Math.round(config.seconds * config.eventsPerSecond);
    const committedAt: number[] = new Array(total);
    const intervalMs = 1000 / config.eventsPerSecond;
    const start = performance.now();
    const writes: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      const due = start + i * intervalMs;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      writes.push(
        client.request('POST', '/fhir/Claim', JSON.stringify(claimResource(`Patient/${patient}`, `lat-${i}-${randomBytes(4).toString('hex')}`, i))).then((res) => {
          if (res.status !== 201) throw new Error(`create: ${res.status}`);
          committedAt[i] = performance.now();
        }),
      );
    }
    await Promise.all(writes);
    const sent = (performance.now() - start) / 1000;
    await waitUntil(() => receiver.arrivals.length >= total, 60_000, 'all notifications');
    // One subscription delivers in commit order, so the k-th arrival is the k-th commit's.
    const commits = [...committedAt].sort((a, b) => a - b);
    const all = receiver.arrivals.slice(0, total).map((t, k) => t - commits[k]);
    const inOrder = all.slice(warmup);
    if (process.env.BENCH_DEBUG) {
      const windows = [];
      for (let k = 0; k < all.length; k += 100) windows.push(Math.max(...all.slice(k, k + 100)).toFixed(0));
      log(`max latency per 100 events (warm-up included): ${windows.join(' ')}`);
      log(`first 20: ${all.slice(0, 20).map((x) => x.toFixed(0)).join(' ')}`);
    }
    const latencies = [...inOrder].sort((a, b) => a - b);
    const at = (p: number): string => percentile(latencies, p).toFixed(2);
    log(`latency percentiles (ms): p50 ${at(0.5)} p90 ${at(0.9)} p95 ${at(0.95)} p99 ${at(0.99)} max ${at(1)}`);
    return (
      `| Commit-to-receiver latency at ${fmt(total / sent)} events/s (1 subscription, ${fmt(total - warmup)} events after ${fmt(warmup)} of warm-up) | ` +
      `p50 ${at(0.5)} ms, p99 ${at(0.99)} ms | 1.5 ms p50, 3.7 ms p99 (in-process queue, lost on crash) |`
    );
  } finally {
    await server.stop();
  }
}

async function throughputPhase(schema: string, receiver: Receiver, subscriptions: number): Promise<string> {
  let api: RunningServer | undefined;
  let worker: RunningServer | undefined;
  try {
    api = await startServer({ databaseUrl: config.databaseUrl, schema, logFile: `${RESULTS_DIR}server-subscriptions.log`, env: serverEnv(), args: ['--role=api'] });
    const client = new HttpClient({ baseUrl: api.baseUrl, authorization: await authorization(api.baseUrl) }, 32);
    const patient = await post(client, '/fhir/Patient', { resourceType: 'Patient' });
    const marker = randomBytes(4).toString('hex');
    for (let s = 0; s < subscriptions; s++) {
      await post(client, '/fhir/Subscription', subscription(receiver.url, `Claim?identifier=${CLAIM_ID_SYSTEM}|&status=active`));
    }
    const claims = Math.ceil(config.backlog / subscriptions);
    for (let i = 0; i < claims; i += 32) {
      await Promise.all(
        Array.from({ length: Math.min(32, claims - i) }, (_, k) =>
          post(client, '/fhir/Claim', claimResource(`Patient/${patient}`, `tp-${marker}-${i + k}`, i + k)),
        ),
      );
    }
    const backlog = claims * subscriptions;
    const before = receiver.arrivals.length;
    const started = performance.now();
    worker = await startServer({
      databaseUrl: config.databaseUrl,
      schema,
      logFile: `${RESULTS_DIR}server-subscriptions-worker.log`,
      env: { ...serverEnv(), LOG_LEVEL: 'info' },
      args: ['--role=worker'],
    });
    await waitUntil(() => receiver.arrivals.length - before >= backlog, 300_000, 'the backlog to drain');
    const seconds = (receiver.arrivals[before + backlog - 1] - started) / 1000;
    return `| Deliveries/s, ${subscriptions} subscription${subscriptions > 1 ? 's' : ''} (backlog of ${fmt(backlog)}, worker start included) | ${fmt(backlog / seconds)}/s | |`;
  } finally {
    await worker?.stop();
    await api?.stop();
  }
}

async function main(): Promise<void> {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const admin = new pg.Pool({ connectionString: config.databaseUrl, max: 1 });
  const receiver = await startReceiver();
  const schemas: string[] = [];
  const fresh = (): string => {
    const schema = `bench_subs_${randomBytes(5).toString('hex')}`;
    schemas.push(schema);
    return schema;
  };
  try {
    const rows = [
      '| Figure | fhir-billing | Medplum (same machine) |',
      '| --- | --- | --- |',
      await latencyPhase(fresh(), receiver),
    ];
    receiver.arrivals.length = 0;
    rows.push(await throughputPhase(fresh(), receiver, 1));
    receiver.arrivals.length = 0;
    rows.push(await throughputPhase(fresh(), receiver, 100));
    log('\nSubscriptions (PostgreSQL; server, worker, receiver and load generator share 2 cores):\n');
    for (const row of rows) log(row);
  } finally {
    await receiver.close();
    for (const schema of schemas) await admin.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`).catch(() => {});
    await admin.end();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
