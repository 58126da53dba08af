/**
 * `npm run bench:startup`: time from spawning `node src/main.ts` (with `npm start`'s node flags) to
 * its first healthy /healthz, and its memory (from /proc/<pid>/status: VmHWM is the peak resident
 * set, VmRSS the current one): peak during start and BENCH_IDLE_SECONDS (10) of idling, RSS when
 * idle, the highest RSS while BENCH_LOAD_CLIENTS (32) clients create Patients for
 * BENCH_LOAD_SECONDS (10), and the peak over the whole run. Four starts: the embedded database in
 * memory (DATA_DIR=memory://), on a new data directory (its first start runs initdb), on that
 * directory again, and PostgreSQL (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test,
 * in a schema of its own). Results go to bench/results/startup.md.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { HttpClient, runLoad } from './load.ts';
import { fmt, log } from './report.ts';
import { START_ENV, START_FLAGS, startServer } from './server.ts';

const num = (name: string, fallback: number): number => Number(process.env[name] || fallback);
const config = {
  databaseUrl: process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test',
  idleSeconds: num('BENCH_IDLE_SECONDS', 10),
  loadSeconds: num('BENCH_LOAD_SECONDS', 10),
  loadClients: num('BENCH_LOAD_CLIENTS', 32),
};
const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const credentials = { clientId: 'bench', clientSecret: randomBytes(24).toString('hex') };

interface Figures {
  label: string;
  readyMs: number;
  startPeakMb: number;
  idleMb: number;
  loadMaxMb: number;
  peakMb: number;
  createsPerSecond: number;
  load: number;
}

function status(pid: number): { rssMb: number; hwmMb: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(text)?.[1] ?? 0);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
}

async function measure(label: string, databaseUrl: string | undefined, env: Record<string, string>): Promise<Figures> {
  const schema = databaseUrl ? `bench_start_${randomBytes(6).toString('hex')}` : undefined;
  const server = await startServer({
    databaseUrl,
    schema,
    logFile: `${RESULTS_DIR}startup-server.log`,
    env: { ...env, BOOTSTRAP_CLIENT_ID: credentials.clientId, BOOTSTRAP_CLIENT_SECRET: credentials.clientSecret },
    startTimeoutMs: 180_000,
  });
  try {
    await new Promise((r) => setTimeout(r, config.idleSeconds * 1000));
    const idle = status(server.pid);
    const anonymous = new HttpClient({ baseUrl: server.baseUrl }, 1);
    const res = await anonymous.request('POST', '/api/token', JSON.stringify(credentials), true);
    anonymous.close();
    const authorization = `Bearer ${(JSON.parse(res.body!) as { accessToken: string }).accessToken}`;
    let loadMaxMb = 0;
    const sampler = setInterval(() => (loadMaxMb = Math.max(loadMaxMb, status(server.pid).rssMb)), 200);
    const body = JSON.stringify({ resourceType: 'Patient', name: [{ family: 'Startup', given: ['Bench'] }] });
    const load = await runLoad({ baseUrl: server.baseUrl, authorization }, config.loadClients, config.loadSeconds, 1, async (client) => {
      const r = await client.request('POST', '/fhir/Patient', body);
      return r.status === 201 || `create answered ${r.status}`;
    });
    clearInterval(sampler);
    if (load.errors) throw new Error(`${label}: ${load.firstError}`);
    const figures: Figures = {
      label,
      readyMs: server.readyMs,
      startPeakMb: idle.hwmMb,
      idleMb: idle.rssMb,
      loadMaxMb,
      peakMb: status(server.pid).hwmMb,
      createsPerSecond: load.perSecond,
      load: os.loadavg()[0],
    };
    log(
      `${label}: healthy after ${(figures.readyMs / 1000).toFixed(1)} s; peak at start ${figures.startPeakMb.toFixed(0)} MB, ` +
        `idle ${figures.idleMb.toFixed(0)} MB, under load ${figures.loadMaxMb.toFixed(0)} MB (${fmt(load.perSecond)} creates/s), ` +
        `peak ${figures.peakMb.toFixed(0)} MB | load average ${figures.load.toFixed(1)}`,
    );
    return figures;
  } finally {
    await server.stop();
    if (databaseUrl && schema) {
      const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
      await pool.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`).catch(() => {});
      await pool.end();
    }
  }
}

async function main(): Promise<void> {
  mkdirSync(RESULTS_DIR, { recursive: true });
  log(`# startup and memory (${Object.entries(START_ENV).map(([k, v]) => `${k}=${v} `).join('')}node ${START_FLAGS.join(' ') || '(no flags)'} src/main.ts; ${os.cpus().length} cores, load average ${os.loadavg()[0].toFixed(1)})`);
  const dataDir = mkdtempSync(join(os.tmpdir(), 'fhir-billing-bench-'));
  const results: Figures[] = [];
  try {
    results.push(await measure('embedded, DATA_DIR=memory://', undefined, { DATA_DIR: 'memory://' }));
    results.push(await measure('embedded, new data directory', undefined, { DATA_DIR: dataDir }));
    results.push(await measure('embedded, existing data directory', undefined, { DATA_DIR: dataDir }));
    results.push(await measure('PostgreSQL', config.databaseUrl, {}));
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
  const rows = results.map(
    (r) =>
      `| ${r.label} | ${(r.readyMs / 1000).toFixed(1)} s | ${r.startPeakMb.toFixed(0)} MB | ${r.idleMb.toFixed(0)} MB | ` +
      `${r.loadMaxMb.toFixed(0)} MB (${fmt(r.createsPerSecond)} creates/s) | ${r.peakMb.toFixed(0)} MB | ${r.load.toFixed(1)} |`,
  );
  const markdown = [
    `# Startup and memory (idle after ${config.idleSeconds} s; load: ${config.loadClients} clients creating Patients for ${config.loadSeconds} s)`,
    '',
    '| database | spawn to /healthz 200 | peak at start | idle RSS | RSS under load | peak | load average |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
  writeFileSync(`${RESULTS_DIR}startup.md`, markdown);
  log(`written to bench/results/startup.md`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
