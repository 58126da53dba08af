/**
 * `npm run bench:remittance` (node --expose-gc): a generated X12 835 imported end to end (parse, envelope and balance
 * checks, one ClaimResponse per claim through the repository with its index, history, outbox and
 * billing follow-ups, the PaymentReconciliation) in one transaction, as the CLI and
 * POST /api/remittances do. Reports claims per second and the importer's memory, sampled every
 * 20 ms during the import above the heap it started with, and the heap still alive after a full
 * GC every tenth of the file (what the importer keeps): a streaming importer keeps about the same
 * whatever the size of the file.
 *
 *   DATABASE_URL               default postgres://postgres@127.0.0.1:5432/test (a schema of its own);
 *                              `embedded`: the embedded database, in memory
 *   BENCH_REMITTANCE_CLAIMS    sizes, comma-separated (default 1000,10000)
 *   BENCH_REMITTANCE_PROFILE   1: also print the import's statements per claim by kind, with their time
 *
 * Results go to bench/results/remittance.md.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { insertTenant } from '../src/auth/store.ts';
import { billingObserver } from '../src/billing/index.ts';
import { migrate, openDatabase } from '../src/db/index.ts';
import { FULL_ACCESS } from '../src/fhir/access.ts';
import { composeObservers } from '../src/fhir/change-observer.ts';
import type { ChangeObserver } from '../src/fhir/change-observer.ts';
import { PostgresRepository } from '../src/fhir/repository.ts';
import { importRemittance } from '../src/inbound/x12-835/import.ts';
import { subscriptionObserver } from '../src/subscriptions/index.ts';
import { claim, patient } from '../test/support/fixtures.ts';
import { profilingDatabase } from './profile-db.ts';
import { fmt, log } from './report.ts';

const sizes = (process.env.BENCH_REMITTANCE_CLAIMS || '1000,10000').split(',').map(Number);
const databaseUrl = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const schema = `bench_remit_${randomBytes(6).toString('hex')}`;
const dir = mkdtempSync(join(tmpdir(), 'bench-835-'));

/** Writes an 835 of `claims` CLPs (each with CAS PR/CO and one SVC), streaming; returns its size. */
async function write835(path: string, prefix: string, claims: number): Promise<number> {
  const out = createWriteStream(path);
  const write = async (line: string): Promise<void> => {
    if (!out.write(`${line}~\n`)) await once(out, 'drain');
  };
  let count = 0;
  const seg = async (line: string): Promise<void> => {
    count++;
    await write(line);
  };
  await write('ISA*00*          *00*          *ZZ*ACMEHEALTHPLAN *ZZ*CITYCLINIC     *240510*1200*^*00501*000000900*0*P*:');
  await write('GS*HP*ACMEHEALTHPLAN*CITYCLINIC*20240510*1200*900*X*005010X221A1');
  await seg('ST*835*0001*005010X221A1');
  // Each claim: charge 200, paid 150, patient 30 (coinsurance), contractual 20.
  await seg(`BPR*I*${(150 * claims).toFixed(2)}*C*ACH*CCP*01*999999992*DA*123456*1512345678**01*999988880*DA*98765*20240510`);
  await seg(`TRN*1*${prefix}*1512345678`);
  await seg('N1*PR*ACME HEALTH PLAN*XV*ACME01');
  await seg('N1*PE*CITY CLINIC*XX*1234567893');
  await seg('LX*1');
  for (let i = 0; i < claims; i++) {
    await seg(`CLP*${prefix}-${i}*1*200*150*30*12*PCC-${prefix}-${i}*11*1`);
    await seg('CAS*CO*45*20');
    await seg('CAS*PR*2*30');
    await seg('NM1*QC*1*DOE*JANE****MI*W123456789');
    await seg('SVC*HC:99213*200*150**1');
    await seg('CAS*CO*45*20');
    await seg('CAS*PR*2*30');
    await seg('REF*6R*1');
  }
  await seg(`SE*${count + 1}*0001`);
  await write('GE*1*900');
  await write('IEA*1*000000900');
  out.end();
  await once(out, 'finish');
  return statSync(path).size;
}

async function main(): Promise<void> {
  const embedded = databaseUrl === 'embedded';
  const db = profilingDatabase(await openDatabase({ databaseUrl: embedded ? undefined : databaseUrl, ...(!embedded && { schema }), dataDir: 'memory://', poolSize: 4 }));
  const rows: string[] = [];
  try {
    await migrate(db);
    await insertTenant(db, 'bench', 'Bench');
    const observer: ChangeObserver = composeObservers([subscriptionObserver({ allowPrivateNetworks: false }), billingObserver({ db, observer: () => observer })]);
    const repo = new PostgresRepository(db, { tenantId: 'bench', access: FULL_ACCESS, baseUrl: '' }, { observer });
    const patientRef = `Patient/${(await repo.createResource(patient())).id}`;
    for (const n of sizes) {
      const prefix = `B${n}`;
      log(`seeding ${fmt(n)} claims ...`);
      const s0 = performance.now();
      for (let i = 0; i < n; i += 50) {
        await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, k) => repo.createResource(claim(patientRef, `${prefix}-${i + k}`))));
      }
      log(`  ${((performance.now() - s0) / 1000).toFixed(1)} s`);
      await db.query('ANALYZE');
      const path = join(dir, `${prefix}.835`);
      const bytes = await write835(path, prefix, n);

      (globalThis as { gc?: () => void }).gc?.();
      const base = process.memoryUsage();
      let peakHeap = base.heapUsed;
      let peakRss = base.rss;
      const sampler = setInterval(() => {
        const m = process.memoryUsage();
        peakHeap = Math.max(peakHeap, m.heapUsed);
        peakRss = Math.max(peakRss, m.rss);
      }, 20);
      // What the import keeps alive: the heap after a full GC, every tenth of the file.
      let retained = 0;
      const gc = (globalThis as { gc?: () => void }).gc;
      const onClaim = (k: number): void => {
        if (!gc || k % Math.max(1, Math.floor(n / 10)) !== 0) return;
        gc();
        retained = Math.max(retained, process.memoryUsage().heapUsed - base.heapUsed);
      };
      db.take();
      const t0 = performance.now();
      const result = await importRemittance(repo, createReadStream(path), { onClaim });
      const seconds = (performance.now() - t0) / 1000;
      clearInterval(sampler);
      const statements = db.take();
      const perClaim = statements.reduce((sum, s) => sum + s.count, 0) / n;
      if (process.env.BENCH_REMITTANCE_PROFILE === '1') {
        for (const s of statements.slice(0, 40)) log(`  ${(s.count / n).toFixed(2).padStart(7)}/claim ${(s.ms / 1000).toFixed(2).padStart(7)} s  ${s.kind}`);
      }
      if (!result.ok || result.remittances[0].applied !== n) throw new Error(`import failed: ${JSON.stringify(result)}`);
      const heap = (peakHeap - base.heapUsed) / 1024 / 1024;
      const rss = (peakRss - base.rss) / 1024 / 1024;
      const kept = retained / 1024 / 1024;
      const line = `| ${fmt(n)} | ${(bytes / 1024 / 1024).toFixed(1)} MB | ${seconds.toFixed(1)} s | ${fmt(n / seconds)} | ${perClaim.toFixed(1)} | ${kept.toFixed(1)} MB | ${heap.toFixed(1)} MB | ${rss.toFixed(1)} MB |`;
      log(`  imported: ${fmt(n / seconds)} claims/s, ${perClaim.toFixed(1)} statements/claim; retained heap +${kept.toFixed(1)} MB, peak heap +${heap.toFixed(1)} MB, peak RSS +${rss.toFixed(1)} MB`);
      rows.push(line);
    }
  } finally {
    if (!embedded) await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const table = [
    '# Remittance import (X12 835)',
    '',
    `${new Date().toISOString()}; ${embedded ? 'the embedded database (PGlite, in memory)' : `PostgreSQL at ${databaseUrl.replace(/\/\/[^@]*@/, '//')}`}; one process, one transaction per file.`,
    '',
    '| claims | file | import | claims/s | statements/claim | heap retained (after GC, every 10%) | peak heap | peak RSS |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(join(RESULTS_DIR, 'remittance.md'), table);
  log();
  log(table);
}

await main();
