/**
 * `npm run bench`: create, read-by-id and identifier-search figures of the real HTTP server on
 * PostgreSQL, at BENCH_CLAIMS_SMALL (10,000) and BENCH_CLAIMS_LARGE (1,000,000) stored Claims.
 *
 *   DATABASE_URL        default postgres://postgres@127.0.0.1:5432/test
 *   BENCH_SECONDS       measured seconds per throughput phase (default 10)
 *   BENCH_CLAIMS_SMALL  default 10000;  BENCH_CLAIMS_LARGE  default 1000000
 *   BENCH_SEARCHES      sequential identifier (and chained) searches per size (default 2000)
 *   BENCH_TRANSACTIONS  transactions of 1,000 conditional patient updates (default and most 10)
 *   BENCH_SEED_BATCH    claims per INSERT ... SELECT (default 20000); BENCH_SEED_CONNECTIONS (default 2)
 *   BENCH_SERVER_NODE_ARGS  extra node flags for the server (bench/server.ts, every bench), e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
 *
 * Phases: seed (bulk loader, seed.ts) to the small size → identifier search (hit and no match) on
 * the tables as loaded, never analysed (the server runs with ANALYZE_INTERVAL_SECONDS=0, and the
 * bench checks pg_stats stayed empty) → VACUUM (ANALYZE) → identifier search → create at 8 and 32
 * clients → read by id → seed to the large size → identifier search + EXPLAIN → create and read
 * again. After each seed: VACUUM (ANALYZE) + CHECKPOINT. The server is `node src/main.ts` in a child
 * process; everything lives in a fresh schema bench_<random>, dropped at the end. Results are
 * printed and written to bench/results/latest.md; the server's output goes to bench/results/server.log.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { DEFAULT_SEARCH_COUNT, parseSearchRequest } from '@medplum/core';
import pg from 'pg';
import { compileSearch, pageStatement } from '../src/fhir/search/query.ts';
import { loadProfiles } from '../src/profiles/index.ts';
import { CLAIM_ID_SYSTEM, PATIENTS, claimResource, seededClaim, seededPatientId } from './claims.ts';
import { HttpClient, runLoad, runSequential } from './load.ts';
import type { LoadResult, Target, Work } from './load.ts';
import { sample, share } from './cpu.ts';
import { fmt, log, ms, report, resultsMarkdown } from './report.ts';
import type { Measured, Results } from './report.ts';
import { ProgressBar, seedClaims, verifySeeded } from './seed.ts';
import { startServer } from './server.ts';
import type { RunningServer } from './server.ts';

const env = (name: string, fallback: number): number => {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got '${value}'`);
  return n;
};

const config = {
  databaseUrl: process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test',
  seconds: env('BENCH_SECONDS', 10),
  smallClaims: env('BENCH_CLAIMS_SMALL', 10_000),
  largeClaims: env('BENCH_CLAIMS_LARGE', 1_000_000),
  searches: env('BENCH_SEARCHES', 2000),
  /** Transactions of 1,000 patients each (10: every patient the seeded Claims point at). */
  transactions: Math.min(env('BENCH_TRANSACTIONS', 10), 10),
  seedBatch: env('BENCH_SEED_BATCH', 20_000),
  seedConnections: env('BENCH_SEED_CONNECTIONS', 2),
};
const warmupSeconds = Math.min(2, config.seconds / 5);

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const SERVER_LOG = `${RESULTS_DIR}server.log`;
const schema = `bench_${randomBytes(6).toString('hex')}`;
/** The tenant seeded rows belong to: the server's bootstrap tenant, which HTTP requests act in. */
const TENANT = 'default';
/**
 * A client the server creates at start (BOOTSTRAP_CLIENT_*), for when it wants an access token;
 * a server without authentication ignores these variables.
 */
const BENCH_CLIENT = { id: 'bench', secret: randomBytes(24).toString('hex') };
const salt = randomBytes(4).toString('hex');
/** application_name of every connection of this bench and of its server (PGAPPNAME), to tell its backends apart. */
const APP_NAME = `fhir-billing ${schema}`;

async function main(): Promise<void> {
  const started = performance.now();
  const results: Results = { machine: [], seeding: [] };
  const pool = new pg.Pool({
    connectionString: config.databaseUrl,
    max: config.seedConnections + 1,
    options: `-c search_path=${schema}`,
    application_name: APP_NAME,
  });
  let server: RunningServer | undefined;
  let cleaned = false;
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    await server?.stop().catch(() => {});
    await pool.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`).catch((err) => console.error('drop schema failed:', err));
    await pool.end().catch(() => {});
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping the server and dropping the bench schema`);
      void cleanup().finally(() => process.exit(128 + os.constants.signals[signal]));
    });
  }
  // Output piped into `head` and closed early must not kill the bench before it drops its schema.
  process.stdout.on('error', () => {});

  try {
    results.machine = await machineInfo(pool);
    log('# fhir-billing benchmark');
    log();
    for (const line of results.machine) log(`- ${line}`);
    log();

    mkdirSync(RESULTS_DIR, { recursive: true });
    server = await startServer({
      databaseUrl: config.databaseUrl,
      schema,
      logFile: SERVER_LOG,
      env: {
        PGAPPNAME: APP_NAME,
        BOOTSTRAP_TENANT: TENANT,
        BOOTSTRAP_CLIENT_ID: BENCH_CLIENT.id,
        BOOTSTRAP_CLIENT_SECRET: BENCH_CLIENT.secret,
        TOKEN_TTL_SECONDS: '86400',
        // The bench analyses after each load itself, and measures the unanalysed case first.
        ANALYZE_INTERVAL_SECONDS: '0',
      },
    });
    const base = await authenticate(server.baseUrl);
    log(`server pid ${server.pid} at ${server.baseUrl}, schema ${schema}${base.authorization ? ', with an access token' : ''}`);
    loadProfiles(); // extractSearchIndex and compileSearch read the search parameters

    const stored = async (): Promise<number> =>
      Number((await pool.query(`SELECT count(*) AS n FROM resource WHERE resource_type = 'Claim'`)).rows[0].n);
    let seeded = 0; // seeded claims are numbers [0, seeded)
    const seedTo = async (target: number, settle = true): Promise<number> => {
      const want = target - (await stored());
      if (want <= 0) return stored();
      const clients = await Promise.all(Array.from({ length: config.seedConnections }, () => pool.connect()));
      const bar = new ProgressBar(`seeding to ${fmt(target)} Claims`, want);
      try {
        await seedClaims(clients, seeded, seeded + want, {
          tenantId: TENANT,
          salt,
          batchSize: config.seedBatch,
          onProgress: (n) => bar.update(n),
        });
      } finally {
        clients.forEach((c) => c.release());
      }
      const seconds = bar.finish();
      // The SQL-made rows must be the repository's: a sample across what this seed wrote.
      await verifySeeded(pool, TENANT, salt, Array.from({ length: 20 }, (_, i) => seeded + Math.floor((i * want) / 20)));
      seeded += want;
      results.seeding.push({ claims: want, seconds, settleSeconds: 0, settledBy: 'nothing yet (measured unanalysed first)' });
      log(`seeded ${fmt(want)} Claims in ${seconds.toFixed(1)} s (${fmt(want / seconds)}/s)${settle ? '' : '; not analysed'}`);
      if (settle) await settleLastSeed();
      return stored();
    };
    const settleLastSeed = async (): Promise<void> => {
      const settled = await settleTables(pool);
      const last = results.seeding.at(-1)!;
      Object.assign(last, { settleSeconds: settled.seconds, settledBy: settled.by });
      log(`then ${settled.by} in ${settled.seconds.toFixed(1)} s`);
    };

    const patientRef = await createPatient(base);
    const pid = server.pid;
    // This bench's backends (the server's pool included) and the cluster's writers: not anyone else's.
    const ourBackends = async (): Promise<number[]> =>
      (
        await pool.query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity WHERE application_name = $1 OR backend_type IN ('checkpointer', 'background writer', 'walwriter')`,
          [APP_NAME],
        )
      ).rows.map((r) => r.pid);
    const phase = async (label: string, run: () => Promise<LoadResult>): Promise<Measured> => {
      const before = sample(pid, await ourBackends());
      const result: Measured = { ...(await run()), label, cpu: undefined };
      result.cpu = share(before, sample(pid, await ourBackends()));
      report(result);
      return result;
    };

    // 0. Identifier search at the small size on tables never analysed: hit and no match.
    const small = await seedTo(config.smallClaims, false);
    results.searchUnanalysed = { ...(await phase(`identifier search @ ${fmt(small)}, unanalysed`, () => searchPhase(base, seeded))), stored: small };
    results.searchUnanalysedMiss = { ...(await phase(`identifier search, no match @ ${fmt(small)}, unanalysed`, () => searchMissPhase(base))), stored: small };
    results.unanalysedExplain = await explainSearch(pool, 'no-such-bill');
    if (await hasStatistics(pool)) throw new Error('the tables were analysed during the unanalysed phase; its figures are not what they claim');
    log(`EXPLAIN of the no-match search @ ${fmt(small)}, unanalysed: ${results.unanalysedExplain.summary}`);
    await settleLastSeed();

    // 1. Identifier search at the small size, analysed, before anything else is written.
    results.searchSmall = { ...(await phase(`identifier search @ ${fmt(small)}`, () => searchPhase(base, seeded))), stored: small };

    // 2. Create throughput at 8 and 32 clients, then reads of what was created.
    const created: string[] = [];
    results.create8 = await phase('create, 8 clients', () => createPhase(base, 8, patientRef, created));
    results.create32 = await phase('create, 32 clients', () => createPhase(base, 32, patientRef, created));
    results.read32 = await phase(`read by id, 32 clients (of ${fmt(created.length)} created)`, () =>
      runLoad(base, 32, config.seconds, warmupSeconds, readWork(() => created[(Math.random() * created.length) | 0])),
    );

    // 2b. The patients the seeded Claims point at, through the API: transactions of 1,000
    // conditional updates each (PUT Patient?identifier=..., no match, so each creates with its id).
    results.transactions = await transactionPhase(base);
    log(`transaction of ${fmt(TRANSACTION_ENTRIES)} conditional updates: ${results.transactions.runs} runs, p50 ${ms(results.transactions.p50Ms)}, max ${ms(results.transactions.maxMs)}`);
    results.chainSmall = { ...(await phase(`chained search (patient.identifier) @ ${fmt(small)}`, () => chainPhase(base, seeded))), stored: small };

    // 3. Identifier search at the large size; the plan of its SQL; creates and reads at that size.
    const large = await seedTo(config.largeClaims);
    results.searchLarge = { ...(await phase(`identifier search @ ${fmt(large)}`, () => searchPhase(base, seeded))), stored: large };
    results.chainLarge = { ...(await phase(`chained search (patient.identifier) @ ${fmt(large)}`, () => chainPhase(base, seeded))), stored: large };
    results.explain = await explainSearch(pool, seededClaim(salt, (Math.random() * seeded) | 0).billId);
    log(`EXPLAIN of the identifier search @ ${fmt(large)}: ${results.explain.summary} (full plan in the results)`);
    results.create32Large = await phase(`create, 32 clients @ ~${fmt(large)}`, () => createPhase(base, 32, patientRef, []));
    results.read32Large = await phase(`read by id, 32 clients @ ~${fmt(large)} (of ${fmt(seeded)} seeded)`, () =>
      runLoad(base, 32, config.seconds, warmupSeconds, readWork(() => seededClaim(salt, (Math.random() * seeded) | 0).id)),
    );

    results.totalSeconds = (performance.now() - started) / 1000;
    const markdown = resultsMarkdown(results, { seconds: config.seconds, warmupSeconds, searches: config.searches });
    log('\n' + markdown);
    writeFileSync(`${RESULTS_DIR}latest.md`, markdown);
    log(`written to bench/results/latest.md`);
  } catch (err) {
    if (server) console.error(`server log (${SERVER_LOG}), last lines:\n${server.logTail(10)}`);
    throw err;
  } finally {
    await cleanup();
  }
}

async function machineInfo(pool: pg.Pool): Promise<string[]> {
  const setting = async (name: string): Promise<string> => (await pool.query(`SHOW ${name}`)).rows[0][name];
  const cpus = os.cpus();
  const git = (...args: string[]): string => {
    try {
      return execFileSync('git', args, { cwd: fileURLToPath(new URL('../', import.meta.url)), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return '';
    }
  };
  const commit = git('rev-parse', '--short', 'HEAD') || 'unknown';
  const dirty = git('status', '--porcelain', '--', 'src') ? ' + uncommitted changes in src/' : '';
  return [
    `code: commit ${commit}${dirty}`,
    `${cpus.length} cores (${cpus[0]?.model ?? 'unknown CPU'}), ${fmt(os.totalmem() / 2 ** 30)} GiB RAM, ${os.type()} ${os.release()}`,
    `Node ${process.version} (server and load generator)`,
    `PostgreSQL ${await setting('server_version')}: shared_buffers ${await setting('shared_buffers')}, ` +
      `synchronous_commit ${await setting('synchronous_commit')}, autovacuum ${await setting('autovacuum')}`,
    `server pool size ${process.env.DATABASE_POOL_SIZE ?? '20 (default)'}; load generator: node:http keep-alive Agent, one connection per client`,
    `caveat: the load generator, the server and PostgreSQL share these ${cpus.length} cores, so every figure is lower than the server alone would reach; ` +
      `load average at start ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (anything else running skews the figures)`,
  ];
}

/**
 * After a bulk load, what autovacuum (off on these machines) and the checkpointer would long since
 * have done for rows this old: VACUUM (ANALYZE) every table (planner statistics, hint bits and the
 * visibility map), then CHECKPOINT, so searches do not pay for writing out the load's dirty pages.
 * CHECKPOINT needs superuser or pg_checkpoint; without it the bench goes on without one.
 */
async function settleTables(pool: pg.Pool): Promise<{ seconds: number; by: string }> {
  const t0 = performance.now();
  const tables = await pool.query<{ tablename: string }>('SELECT tablename FROM pg_tables WHERE schemaname = $1', [schema]);
  for (const { tablename } of tables.rows) await pool.query(`VACUUM (ANALYZE) ${pg.escapeIdentifier(tablename)}`);
  let by = 'VACUUM (ANALYZE) + CHECKPOINT';
  await pool.query('CHECKPOINT').catch(() => (by = 'VACUUM (ANALYZE) (CHECKPOINT not permitted)'));
  return { seconds: (performance.now() - t0) / 1000, by };
}

/** The server as the bench will call it: with an access token if /fhir answers 401 without one. */
async function authenticate(baseUrl: string): Promise<Target> {
  const anonymous = new HttpClient({ baseUrl }, 1);
  try {
    const probe = await anonymous.request('GET', '/fhir/Claim?_count=1');
    if (probe.status !== 401) return { baseUrl };
    const body = JSON.stringify({ clientId: BENCH_CLIENT.id, clientSecret: BENCH_CLIENT.secret });
    const res = await anonymous.request('POST', '/api/token', body, true);
    if (res.status !== 200) throw new Error(`the server wants a token, and POST /api/token answered ${res.status} ${res.body}`);
    return { baseUrl, authorization: `Bearer ${(JSON.parse(res.body!) as { accessToken: string }).accessToken}` };
  } finally {
    anonymous.close();
  }
}

async function createPatient(base: Target): Promise<string> {
  const client = new HttpClient(base, 1);
  const body = JSON.stringify({ resourceType: 'Patient', name: [{ family: 'Bench', given: ['Ann'] }], birthDate: '1980-04-02' });
  const res = await client.request('POST', '/fhir/Patient', body, true);
  client.close();
  if (res.status !== 201) throw new Error(`creating the Patient failed: ${res.status} ${res.body}`);
  return `Patient/${(JSON.parse(res.body!) as { id: string }).id}`;
}

/** POST /fhir/Claim, each with a new claim-id identifier; the ids created go to `created`. */
function createPhase(base: Target, clients: number, patientRef: string, created: string[]): Promise<LoadResult> {
  const PLACEHOLDER = '@@bill-id@@';
  const [head, tail] = JSON.stringify(claimResource(patientRef, PLACEHOLDER, 0)).split(PLACEHOLDER);
  const work: Work = async (client) => {
    const res = await client.request('POST', '/fhir/Claim', head + randomUUID() + tail);
    if (res.status !== 201) return `POST /fhir/Claim: ${res.status}`;
    // Location: <base>/Claim/<id>/_history/1
    created.push(String(res.headers.location).split('/').at(-3)!);
    return true;
  };
  return runLoad(base, clients, config.seconds, warmupSeconds, work);
}

function readWork(pickId: () => string): Work {
  return async (client) => {
    const res = await client.request('GET', `/fhir/Claim/${pickId()}`);
    return res.status === 200 || `GET /fhir/Claim/{id}: ${res.status}`;
  };
}

/** Sequential identifier searches for random seeded values; each must find exactly its claim. */
function searchPhase(base: Target, seeded: number): Promise<LoadResult> {
  const work: Work = async (client) => {
    const n = (Math.random() * seeded) | 0;
    const { id, billId } = seededClaim(salt, n);
    const res = await client.request('GET', `/fhir/Claim?identifier=${encodeURIComponent(`${CLAIM_ID_SYSTEM}|${billId}`)}`, undefined, true);
    if (res.status !== 200) return `search: ${res.status}`;
    const bundle = JSON.parse(res.body!) as { entry?: { resource: { id: string } }[] };
    return (bundle.entry?.length === 1 && bundle.entry[0].resource.id === id) || `search for claim ${n} did not return exactly it`;
  };
  return runSequential(base, config.searches, warmupSeconds, work);
}

/** Sequential identifier searches for bills nobody has: each must find nothing. */
function searchMissPhase(base: Target): Promise<LoadResult> {
  const work: Work = async (client) => {
    const res = await client.request('GET', `/fhir/Claim?identifier=${encodeURIComponent(`${CLAIM_ID_SYSTEM}|missing-${randomUUID()}`)}`, undefined, true);
    if (res.status !== 200) return `search: ${res.status}`;
    const bundle = JSON.parse(res.body!) as { entry?: unknown[] };
    return (bundle.entry ?? []).length === 0 || 'a search for a missing bill found something';
  };
  return runSequential(base, config.searches, warmupSeconds, work);
}

const TRANSACTION_ENTRIES = 1000;
const MRN = 'urn:bench-mrn';

/** PUTs every seeded patient (PATIENTS of them) in transactions of 1,000 conditional updates, each timed. */
async function transactionPhase(base: Target): Promise<{ runs: number; p50Ms: number; maxMs: number }> {
  const client = new HttpClient(base, 1);
  const times: number[] = [];
  try {
    for (let from = 0; from < Math.min(PATIENTS, config.transactions * TRANSACTION_ENTRIES); from += TRANSACTION_ENTRIES) {
      const entry = Array.from({ length: Math.min(TRANSACTION_ENTRIES, PATIENTS - from) }, (_, i) => {
        const id = seededPatientId(salt, from + i);
        return {
          resource: { resourceType: 'Patient', id, identifier: [{ system: MRN, value: String(from + i) }], name: [{ family: 'Bench' }] },
          request: { method: 'PUT', url: `Patient?identifier=${encodeURIComponent(`${MRN}|${from + i}`)}` },
        };
      });
      const t0 = performance.now();
      const res = await client.request('POST', '/fhir', JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry }), true);
      times.push(performance.now() - t0);
      if (res.status !== 200) throw new Error(`transaction of ${entry.length}: ${res.status} ${res.body?.slice(0, 300)}`);
    }
  } finally {
    client.close();
  }
  times.sort((a, b) => a - b);
  return { runs: times.length, p50Ms: times[Math.floor(times.length / 2)], maxMs: times[times.length - 1] };
}

/** Sequential chained searches, Claim?patient.identifier=<a seeded patient's MRN>: each must find that patient's Claims. */
function chainPhase(base: Target, seeded: number): Promise<LoadResult> {
  const work: Work = async (client) => {
    // Claim n points at patient n % PATIENTS; only the patients the transactions created have an MRN.
    const n = (Math.random() * Math.min(seeded, PATIENTS, config.transactions * TRANSACTION_ENTRIES)) | 0;
    const res = await client.request('GET', `/fhir/Claim?patient.identifier=${encodeURIComponent(`${MRN}|${n}`)}`, undefined, true);
    if (res.status !== 200) return `chained search: ${res.status}`;
    const bundle = JSON.parse(res.body!) as { entry?: { resource: { patient: { reference: string } } }[] };
    const want = `Patient/${seededPatientId(salt, n)}`;
    return (!!bundle.entry?.length && bundle.entry.every((e) => e.resource.patient.reference === want)) || `chained search for patient ${n} found ${bundle.entry?.length ?? 0} claims, or others'`;
  };
  return runSequential(base, config.searches, warmupSeconds, work);
}

async function hasStatistics(pool: pg.Pool): Promise<boolean> {
  const rows = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stats WHERE schemaname = $1 AND tablename IN ('resource', 'search_token')`, [schema]);
  return rows.rows[0].n > 0;
}

/** The SQL the server runs for the identifier search (as search.ts builds it), explained. */
async function explainSearch(pool: pg.Pool, billId: string): Promise<{ text: string; summary: string }> {
  const request = parseSearchRequest(`Claim?identifier=${encodeURIComponent(`${CLAIM_ID_SYSTEM}|${billId}`)}`);
  const search = compileSearch(TENANT, request);
  // As search.ts runs it: the default page size, plus one row that tells whether a next page exists.
  const sql = pageStatement(search);
  const values = [...search.params, DEFAULT_SEARCH_COUNT + 1, 0];
  const plan = (await pool.query(`EXPLAIN (ANALYZE, BUFFERS) ${sql}`, values)).rows.map((r) => r['QUERY PLAN'] as string);
  // e.g. "Index Scan using search_token_value_idx on search_token i → Index Scan using resource_pkey on resource r; execution 0.13 ms"
  const scans = plan.map((line) => /((?:Parallel )?(?:Seq|Index|Index Only|Bitmap Heap|Bitmap Index) Scan.*?)\s+\(cost/.exec(line)?.[1]).filter(Boolean);
  const execution = plan.map((line) => /Execution Time: ([\d.]+) ms/.exec(line)?.[1]).find(Boolean);
  return { text: [sql, '', ...plan].join('\n'), summary: `${scans.join(' → ')}; execution ${execution} ms` };
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
