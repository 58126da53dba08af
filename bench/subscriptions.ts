/**
 * `npm run bench:subscriptions` (and the second half of `npm run bench`): notification delivery of
 * the real server on PostgreSQL, beside the machine's raw PostgreSQL rate (pgbench TPC-B, 8 clients).
 *
 * 1. Latency: one process running API and worker (as `npm start` does), Claims created open-loop at
 *    BENCH_EVENTS_PER_SECOND (200) for BENCH_SECONDS (15) after a warm-up that is not measured,
 *    matched by 1 and by 100 subscriptions (classic rest-hook pings; and 100 Backport id-only
 *    subscriptions that take up to 100 events a bundle, backport-max-count). Latency is from the
 *    commit (the notification's occurred_at, which the commit stamps) to the moment the receiver,
 *    in a thread of this process, has the notification of that event; p50/p99 over the whole run
 *    and over its first and last quarter (flat means the worker keeps up). Beside it, the same from
 *    the create's 201 reaching us (after the commit and the answer's way back: a lower bound).
 * 2. Throughput: an API-only process builds a backlog (transaction Bundles of 100 Claims; 1
 *    subscription, and 100 that all match), then a worker-only process drains it; deliveries/s is
 *    the backlog over the time to drain it.
 * The receiver answers 200 at once. Everything shares the machine's cores. BENCH_LATENCY_CSV=1
 * writes each latency run's events (commit time in the run, latency) to bench/results/, to see
 * when the slow ones came.
 */
import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { CLAIM_ID_SYSTEM, claimResource } from './claims.ts';
import { HttpClient, percentile } from './load.ts';
import type { FromReceiver } from './receiver-thread.ts';
import { pgbenchTpcB } from './pgbench.ts';
import { fmt, log } from './report.ts';
import { startServer } from './server.ts';
import type { RunningServer } from './server.ts';

const num = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
const config = {
  databaseUrl: process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test',
  seconds: num('BENCH_SECONDS', 15),
  eventsPerSecond: num('BENCH_EVENTS_PER_SECOND', 200),
  backlog: num('BENCH_BACKLOG', 15_000),
};
const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const credentials = { clientId: 'bench', clientSecret: randomBytes(24).toString('hex') };
const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition';

interface Receiver {
  url: string;
  /** Per path: the arrival time (performance.now) of each event, in order (a bundle of n events is n arrivals). */
  arrivals: Map<string, number[]>;
  /** Events received on all paths. */
  events(): number;
  reset(): void;
  close(): Promise<void>;
}

/** The receiver, in a thread of its own (bench/receiver-thread.ts), so that its arrival times do not wait for this thread. */
async function startReceiver(): Promise<Receiver> {
  const arrivals = new Map<string, number[]>();
  let total = 0;
  const thread = new Worker(new URL('./receiver-thread.ts', import.meta.url));
  // process.hrtime and performance.now() run on one monotonic clock, a constant apart.
  const toPerformanceTime = performance.now() - Number(process.hrtime.bigint()) / 1e6;
  let closed: (() => void) | undefined;
  const port = await new Promise<number>((resolve) => {
    thread.on('message', (m: FromReceiver) => {
      if (m.type === 'listening') resolve(m.port);
      else if (m.type === 'closed') closed?.();
      else {
        let list = arrivals.get(m.path);
        if (!list) arrivals.set(m.path, (list = []));
        for (let i = 0; i < m.events; i++) list.push(m.atMs + toPerformanceTime);
        total += m.events;
      }
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    arrivals,
    events: () => total,
    reset() {
      arrivals.clear();
      total = 0;
    },
    close: () =>
      new Promise<void>((r) => {
        closed = r;
        thread.postMessage('close');
      }),
  };
}

function serverEnv(): Record<string, string> {
  return {
    BOOTSTRAP_CLIENT_ID: credentials.clientId,
    BOOTSTRAP_CLIENT_SECRET: credentials.clientSecret,
    OUTBOUND_ALLOW_PRIVATE_NETWORKS: 'true',
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

type Kind = { kind: 'classic' } | { kind: 'backport'; maxCount: number };

function subscription(endpoint: string, kind: Kind, criteria = `Claim?identifier=${CLAIM_ID_SYSTEM}|`): object {
  if (kind.kind === 'classic') return { resourceType: 'Subscription', status: 'requested', reason: 'bench', criteria, channel: { type: 'rest-hook', endpoint } };
  return {
    resourceType: 'Subscription',
    meta: { profile: [`${BACKPORT}/backport-subscription`] },
    status: 'requested',
    reason: 'bench',
    criteria: 'https://fhir-billing.org/fhir/SubscriptionTopic/claim-changed',
    channel: {
      type: 'rest-hook',
      endpoint,
      payload: 'application/fhir+json',
      _payload: { extension: [{ url: `${BACKPORT}/backport-payload-content`, valueCode: 'id-only' }] },
      extension: [{ url: `${BACKPORT}/backport-max-count`, valuePositiveInt: kind.maxCount }],
    },
  };
}

const describeKind = (kind: Kind): string => (kind.kind === 'classic' ? 'rest-hook ping' : `Backport id-only, max-count ${kind.maxCount}`);

async function waitUntil(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Subscribes `count` endpoints (/s0, /s1, ...) and waits until they are active (Backport: handshaken). */
async function subscribe(client: HttpClient, receiver: Receiver, count: number, kind: Kind, criteria?: string): Promise<void> {
  const ids: string[] = [];
  for (let s = 0; s < count; s++) ids.push(await post(client, '/fhir/Subscription', subscription(`${receiver.url}/s${s}`, kind, criteria)));
  for (const id of ids) {
    for (let tries = 0; ; tries++) {
      const res = await client.request('GET', `/fhir/Subscription/${id}`, undefined, true);
      if (JSON.parse(res.body!).status === 'active') break;
      if (tries > 1000) throw new Error(`Subscription ${id} did not become active`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

const stats = (sorted: number[]): string => `p50 ${percentile(sorted, 0.5).toFixed(1)} / p99 ${percentile(sorted, 0.99).toFixed(1)} ms`;

async function latencyPhase(schema: string, receiver: Receiver, subscriptions: number, kind: Kind): Promise<string> {
  const server = await startServer({
    databaseUrl: config.databaseUrl,
    schema,
    logFile: `${RESULTS_DIR}server-subscriptions.log`,
    env: serverEnv(),
    // A CPU profile of each thread (the API's, the delivery thread's), where the time went.
    ...(process.env.BENCH_SERVER_PROFILE && { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${RESULTS_DIR}`] }),
  });
  try {
    const client = new HttpClient({ baseUrl: server.baseUrl, authorization: await authorization(server.baseUrl) }, 64);
    const patient = await post(client, '/fhir/Patient', { resourceType: 'Patient' });
    await subscribe(client, receiver, subscriptions, kind);
    receiver.reset();
    // Like the other phases, a warm-up (JIT, pool connections, first plans) is sent but not measured.
    const warmup = Math.round(Math.min(3, config.seconds / 5) * config.eventsPerSecond);
    const total = warmup + Math.round(config.seconds * config.eventsPerSecond);
    // A write the server refused (a 503 when it cannot keep up) committed nothing and notifies nothing.
    const committedAt: number[] = [];
    let refused = 0;
    const intervalMs = 1000 / config.eventsPerSecond;
    const start = performance.now();
    const writes: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      const due = start + i * intervalMs;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      writes.push(
        client.request('POST', '/fhir/Claim', JSON.stringify(claimResource(`Patient/${patient}`, `lat-${i}-${randomBytes(4).toString('hex')}`, i)), true).then((res) => {
          if (res.status === 201) committedAt.push(performance.now());
          else if (res.status === 503) refused++;
          else throw new Error(`create: ${res.status}`);
        }),
      );
    }
    await Promise.all(writes);
    const sent = (performance.now() - start) / 1000;
    const committed = committedAt.length;
    await waitUntil(() => receiver.events() >= committed * subscriptions, 600_000, 'all notifications');
    // Each subscription delivers in commit order, so its k-th event is the k-th commit's. The
    // commit is timed twice: by the notification's occurred_at, which the commit itself stamps
    // (clock_timestamp() in migration 022's trigger, the same machine's clock), and by the 201
    // reaching us, after the answer's way back (on a busy server that can come after the
    // notification: a negative latency, so it is only a lower bound).
    const measured = committed - warmup;
    const quarter = Math.floor(measured / 4);
    const stamped = await commitTimes(schema);
    const latencies = (from: (path: string) => number[]): { all: number[]; first: number[]; last: number[] } => {
      const all: number[] = [];
      const first: number[] = [];
      const last: number[] = [];
      for (const [path, arrivals] of receiver.arrivals) {
        const commits = from(path);
        for (let k = warmup; k < committed; k++) {
          const latency = arrivals[k] - commits[k];
          all.push(latency);
          if (k < warmup + quarter) first.push(latency);
          if (k >= committed - quarter) last.push(latency);
        }
      }
      for (const list of [all, first, last]) list.sort((a, b) => a - b);
      return { all, first, last };
    };
    const byAnswer = [...committedAt].sort((a, b) => a - b);
    const { all, first, last } = latencies((path) => stamped.get(path)!);
    if (process.env.BENCH_LATENCY_CSV) {
      const rows = [...receiver.arrivals].flatMap(([path, arrivals]) =>
        stamped.get(path)!.slice(warmup, committed).map((at, i) => `${path},${(at - start).toFixed(2)},${(arrivals[warmup + i] - at).toFixed(2)}`));
      writeFileSync(`${RESULTS_DIR}latency-${subscriptions}.csv`, `path,commit_ms,latency_ms\n${rows.join('\n')}\n`);
    }
    const answered = latencies(() => byAnswer);
    const refusals = refused > 0 ? `, ${fmt(refused)} writes refused with 503` : '';
    log(`latency, ${subscriptions} × ${describeKind(kind)}: ${stats(all)}; first quarter ${stats(first)}; last quarter ${stats(last)}; max ${percentile(all, 1).toFixed(1)} ms${refusals}`);
    log(`  from the 201 instead (a lower bound): ${stats(answered.all)}; max ${percentile(answered.all, 1).toFixed(1)} ms`);
    return (
      `| Commit-to-receiver latency at ${fmt(total / sent)} writes/s, ${subscriptions} subscription${subscriptions > 1 ? 's' : ''} (${describeKind(kind)}; ${fmt(measured)} writes after ${fmt(warmup)} of warm-up${refusals}) | ` +
      `${stats(all)}; first quarter ${stats(first)}, last quarter ${stats(last)} (from the 201 instead: ${stats(answered.all)}) |` +
      (subscriptions === 1 && kind.kind === 'classic' ? ' 1.5 ms p50, 3.7 ms p99 (in-process queue, lost on crash) |' : ' |')
    );
  } finally {
    await server.stop();
  }
}

/**
 * Per receiver path, the commit time of each event-notification in delivery order, in this
 * process's performance.now() time: occurred_at, stamped by the commit (migration 022).
 */
async function commitTimes(schema: string): Promise<Map<string, number[]>> {
  const client = new pg.Client({ connectionString: config.databaseUrl, options: `-c search_path=${pg.escapeIdentifier(schema)}` });
  await client.connect();
  try {
    const rows = await client.query<{ endpoint: string; at: number }>(
      `SELECT s.config->>'endpoint' AS endpoint, extract(epoch FROM n.occurred_at) * 1000 AS at
         FROM subscription_notification n JOIN subscription_registry s ON s.tenant_id = n.tenant_id AND s.id = n.subscription_id
        WHERE n.type = 'event-notification' ORDER BY n.subscription_id, n.seq`,
    );
    // Wall-clock time to performance.now() time. performance.timeOrigin can be a millisecond or
    // more off Date.now(); Date.now() only ticks each millisecond, so the offset is taken where it
    // is largest over a few ticks (just after a tick, where the truncation is smallest).
    let origin = -Infinity;
    for (const until = performance.now() + 5; performance.now() < until; ) origin = Math.max(origin, Date.now() - performance.now());
    const times = new Map<string, number[]>();
    for (const { endpoint, at } of rows.rows) {
      const path = new URL(endpoint).pathname;
      if (!times.has(path)) times.set(path, []);
      times.get(path)!.push(Number(at) - origin);
    }
    return times;
  } finally {
    await client.end();
  }
}

async function throughputPhase(schema: string, receiver: Receiver, subscriptions: number, kind: Kind): Promise<string> {
  let api: RunningServer | undefined;
  let worker: RunningServer | undefined;
  const startWorker = (): Promise<RunningServer> =>
    startServer({
      databaseUrl: config.databaseUrl,
      schema,
      logFile: `${RESULTS_DIR}server-subscriptions-worker.log`,
      env: { ...serverEnv(), LOG_LEVEL: 'info' },
      args: ['--role=worker'],
      ...(process.env.BENCH_WORKER_PROFILE && { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${RESULTS_DIR}`] }),
    });
  try {
    api = await startServer({ databaseUrl: config.databaseUrl, schema, logFile: `${RESULTS_DIR}server-subscriptions.log`, env: serverEnv(), args: ['--role=api'] });
    const client = new HttpClient({ baseUrl: api.baseUrl, authorization: await authorization(api.baseUrl) }, 8);
    const patient = await post(client, '/fhir/Patient', { resourceType: 'Patient' });
    const marker = randomBytes(4).toString('hex');
    // A Backport subscription is active after its handshake: a worker runs just for that.
    const handshaker = kind.kind === 'backport' ? await startWorker() : undefined;
    await subscribe(client, receiver, subscriptions, kind, `Claim?identifier=${CLAIM_ID_SYSTEM}|&status=active`);
    await handshaker?.stop();
    // Transaction Bundles of 100 Claims, 4 at a time: the backlog is built quickly, and it is not what is measured.
    const claims = Math.ceil(config.backlog / subscriptions);
    const bundles: object[] = [];
    for (let i = 0; i < claims; i += 100) {
      const entry = Array.from({ length: Math.min(100, claims - i) }, (_, k) => ({
        resource: claimResource(`Patient/${patient}`, `tp-${marker}-${i + k}`, i + k),
        request: { method: 'POST', url: 'Claim' },
      }));
      bundles.push({ resourceType: 'Bundle', type: 'transaction', entry });
    }
    for (let i = 0; i < bundles.length; i += 4) {
      await Promise.all(
        bundles.slice(i, i + 4).map(async (bundle) => {
          const res = await client.request('POST', '/fhir', JSON.stringify(bundle));
          if (res.status !== 200) throw new Error(`transaction: ${res.status}`);
        }),
      );
    }
    const backlog = claims * subscriptions;
    receiver.reset();
    const started = performance.now();
    worker = await startWorker();
    await waitUntil(() => receiver.events() >= backlog, 600_000, 'the backlog to drain');
    const lastArrival = Math.max(...[...receiver.arrivals.values()].map((a) => a[a.length - 1]));
    const firstArrival = Math.min(...[...receiver.arrivals.values()].map((a) => a[0]));
    const seconds = (lastArrival - started) / 1000;
    // The worker process's start (seconds on a busy machine) is not delivery: the rate from its first delivery too.
    const draining = (lastArrival - firstArrival) / 1000;
    const what = kind.kind === 'classic' ? 'notifications' : 'events';
    log(`drained ${fmt(backlog)} ${what} (${subscriptions} subscription(s)) in ${seconds.toFixed(1)} s from the worker's spawn, ${draining.toFixed(1)} s from its first delivery`);
    return (
      `| Deliveries/s from a backlog, ${subscriptions} subscription${subscriptions > 1 ? 's' : ''} (${describeKind(kind)}; ${fmt(backlog)} ${what}) | ` +
      `${fmt((backlog - 1) / draining)} ${what}/s from the first delivery (${draining.toFixed(1)} s); ${fmt(backlog / seconds)}/s with the worker's start | |`
    );
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
  const phases = (process.env.BENCH_PHASES ?? 'pgbench,latency,bundles100,backlog,backlogBundles,backlog100').split(',');
  try {
    const rows = ['| Figure | fhir-billing | Medplum (same machine) |', '| --- | --- | --- |'];
    if (phases.includes('pgbench')) {
      const raw = await pgbenchTpcB(config.databaseUrl);
      log(`pgbench TPC-B: ${fmt(raw.tps)} tps, ${raw.latencyMs} ms average (${raw.clients} clients, ${raw.seconds} s, scale ${raw.scale})`);
      rows.push(`| PostgreSQL's own rate: pgbench TPC-B, ${raw.clients} clients, ${raw.seconds} s, scale ${raw.scale} | ${fmt(raw.tps)} tps (${raw.latencyMs} ms average) | |`);
    }
    if (phases.includes('latency')) rows.push(await latencyPhase(fresh(), receiver, 1, { kind: 'classic' }));
    if (phases.includes('latency100')) rows.push(await latencyPhase(fresh(), receiver, 100, { kind: 'classic' }));
    if (phases.includes('bundles100')) rows.push(await latencyPhase(fresh(), receiver, 100, { kind: 'backport', maxCount: 100 }));
    if (phases.includes('backlog')) rows.push(await throughputPhase(fresh(), receiver, 1, { kind: 'classic' }));
    if (phases.includes('backlogBundles')) rows.push(await throughputPhase(fresh(), receiver, 1, { kind: 'backport', maxCount: 100 }));
    if (phases.includes('backlog100')) rows.push(await throughputPhase(fresh(), receiver, 100, { kind: 'classic' }));
    log('\nSubscriptions (PostgreSQL; server, worker, receiver and load generator share the machine):\n');
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
