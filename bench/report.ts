import os from 'node:os';
import type { CpuShare } from './cpu.ts';
import type { LoadResult } from './load.ts';

// What the bench prints as it goes, and the Markdown results it ends with.

/** Medplum's figures on the same kind of machine and PostgreSQL (from the issue). */
const MEDPLUM = { create32: 581, read32: 3157, searchP50Ms: 2.2 };
const TARGET = { create32: 2 * MEDPLUM.create32, searchP50Ms: MEDPLUM.searchP50Ms / 2, searchRatio: 1.2 };

export const log = (line = ''): void => void process.stdout.write(line + '\n');
export const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
export const ms = (n: number): string => `${n.toFixed(2)} ms`;

/** One measured phase, with who used the CPU meanwhile. */
export type Measured = LoadResult & { label: string; cpu?: CpuShare };

export interface Results {
  machine: string[];
  create8?: Measured;
  create32?: Measured;
  read32?: Measured;
  searchUnanalysed?: Measured & { stored: number };
  searchUnanalysedMiss?: Measured & { stored: number };
  unanalysedExplain?: { text: string; summary: string };
  searchSmall?: Measured & { stored: number };
  searchLarge?: Measured & { stored: number };
  create32Large?: Measured;
  read32Large?: Measured;
  seeding: { claims: number; seconds: number; settleSeconds: number; settledBy: string }[];
  explain?: { text: string; summary: string };
  /** Transactions of 1,000 conditional updates (the seeded patients). */
  transactions?: { runs: number; p50Ms: number; maxMs: number };
  chainSmall?: Measured & { stored: number };
  chainLarge?: Measured & { stored: number };
  totalSeconds?: number;
}

/** One line per phase as it ends; throws if a request failed. */
export function report(r: Measured): void {
  const errors = r.errors ? `  ERRORS ${r.errors} (first: ${r.firstError})` : '';
  const cpu = r.cpu
    ? `  [cpu % of a core: server ${r.cpu.server.toFixed(0)}, postgres ${r.cpu.postgres.toFixed(0)}, ` +
      `load generator ${r.cpu.bench.toFixed(0)}, rest ${r.cpu.rest.toFixed(0)}]`
    : '';
  log(`${r.label}: ${fmt(r.requests)} in ${r.seconds.toFixed(1)} s = ${fmt(r.perSecond)}/s  p50 ${ms(r.p50Ms)}  p99 ${ms(r.p99Ms)}${cpu}${errors}`);
  if (r.errors) throw new Error(`${r.label}: a request failed: ${r.firstError}`);
}

/** The identifier search on tables never analysed (what the embedded database serves until its first ANALYZE). */
function unanalysedRows(r: Results): string[][] {
  const hit = r.searchUnanalysed;
  const miss = r.searchUnanalysedMiss;
  if (!hit || !miss) return [];
  const at = `@ ${fmt(hit.stored)}, unanalysed`;
  return [
    [`Identifier search ${at}`, `p50 ${ms(hit.p50Ms)}, p99 ${ms(hit.p99Ms)}`, '', '', ''],
    [`Identifier search, no match ${at}`, `p50 ${ms(miss.p50Ms)}, p99 ${ms(miss.p99Ms)}`, '', '', ''],
  ];
}

export function resultsMarkdown(r: Results, settings: { seconds: number; warmupSeconds: number; searches: number }): string {
  const check = (ok: boolean): string => (ok ? 'met' : '**not met**');
  const rate = (x?: LoadResult): string => (x ? `${fmt(x.perSecond)}/s (p50 ${ms(x.p50Ms)}, p99 ${ms(x.p99Ms)})` : 'n/a');
  const small = r.searchSmall!;
  const large = r.searchLarge!;
  const ratio = large.p50Ms / small.p50Ms;
  const rows: string[][] = [
    ['Create Claim, 8 clients', rate(r.create8), '', '', ''],
    ['Create Claim, 32 clients', rate(r.create32), `${fmt(MEDPLUM.create32)}/s`, `≥ ${fmt(TARGET.create32)}/s`, check(r.create32!.perSecond >= TARGET.create32)],
    ['Read Claim by id, 32 clients', rate(r.read32), `${fmt(MEDPLUM.read32)}/s (Redis cache)`, 'none set', ''],
    ...unanalysedRows(r),
    [`Identifier search p50 @ ${fmt(small.stored)}`, ms(small.p50Ms), `${ms(MEDPLUM.searchP50Ms)} @ 100k`, `≤ ${ms(TARGET.searchP50Ms)}`, check(small.p50Ms <= TARGET.searchP50Ms)],
    [`Identifier search p99 @ ${fmt(small.stored)}`, ms(small.p99Ms), '', '', ''],
    [`Identifier search p50 @ ${fmt(large.stored)}`, ms(large.p50Ms), `${ms(MEDPLUM.searchP50Ms)} @ 100k`, `≤ ${ms(TARGET.searchP50Ms)}`, check(large.p50Ms <= TARGET.searchP50Ms)],
    [`Identifier search p99 @ ${fmt(large.stored)}`, ms(large.p99Ms), '', '', ''],
    [`Search p50 ratio ${fmt(large.stored)} / ${fmt(small.stored)}`, `${ratio.toFixed(2)}×`, '', `≤ ${TARGET.searchRatio}×`, check(ratio <= TARGET.searchRatio)],
    ...(r.transactions ? [[`Transaction of 1,000 conditional updates (${r.transactions.runs} runs)`, `p50 ${ms(r.transactions.p50Ms)}, max ${ms(r.transactions.maxMs)}`, '', '', '']] : []),
    ...[r.chainSmall, r.chainLarge].filter((c) => c).map((c) => [`Chained search (patient.identifier) @ ${fmt(c!.stored)}`, `p50 ${ms(c!.p50Ms)}, p99 ${ms(c!.p99Ms)}`, '', '', '']),
    [`Create Claim, 32 clients @ ~${fmt(large.stored)}`, rate(r.create32Large), '', '', ''],
    [`Read Claim by id, 32 clients @ ~${fmt(large.stored)}`, rate(r.read32Large), '', '', ''],
  ];
  const table = [
    '| Figure | fhir-billing | Medplum (same machine) | Target | |',
    '| --- | --- | --- | --- | --- |',
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ];
  const phases = [r.searchUnanalysed, r.searchUnanalysedMiss, r.searchSmall, r.create8, r.create32, r.read32, r.chainSmall, r.searchLarge, r.chainLarge, r.create32Large, r.read32Large].filter((p) => p?.cpu);
  const cpuTable = phases.length
    ? [
        `CPU use during each phase, in % of one core (the machine has ${os.cpus().length * 100}%). PostgreSQL: the server's and the bench's ` +
          'backends and the cluster\'s writers; rest: the kernel outside processes and everything else running, ' +
          'other people\'s PostgreSQL backends included (a large rest means a disturbed run):',
        '',
        '| Phase | server | PostgreSQL | load generator | rest |',
        '| --- | --- | --- | --- | --- |',
        ...phases.map((p) => {
          const c = p!.cpu!;
          return `| ${p!.label} | ${c.server.toFixed(0)} | ${c.postgres.toFixed(0)} | ${c.bench.toFixed(0)} | ${c.rest.toFixed(0)} |`;
        }),
        '',
      ]
    : [];
  const seeding = r.seeding.map(
    (s) => `- seeded ${fmt(s.claims)} Claims in ${s.seconds.toFixed(1)} s (${fmt(s.claims / s.seconds)}/s), then ${s.settledBy} in ${s.settleSeconds.toFixed(1)} s`,
  );
  return [
    `# fhir-billing benchmark, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    ...r.machine.map((m) => `- ${m}`),
    `- ${settings.seconds} s measured per throughput phase after ${settings.warmupSeconds} s of warm-up; ${fmt(settings.searches)} sequential searches per size (1 client)`,
    '',
    ...table,
    '',
    ...cpuTable,
    ...seeding,
    `- total bench time ${((r.totalSeconds ?? 0) / 60).toFixed(1)} min`,
    '',
    `EXPLAIN (ANALYZE, BUFFERS) of the no-match identifier search @ ${fmt(small.stored)} Claims, never analysed: ${r.unanalysedExplain?.summary ?? 'n/a'}`,
    '',
    `EXPLAIN (ANALYZE, BUFFERS) of the identifier search @ ${fmt(large.stored)} Claims: ${r.explain?.summary ?? 'n/a'}`,
    '',
    '```',
    r.explain?.text ?? '',
    '```',
    '',
  ].join('\n');
}

