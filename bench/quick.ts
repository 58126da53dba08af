/**
 * `npm run bench:quick`: a small run of every benchmark, a couple of minutes on an idle 2-core
 * machine, for final figures: payments (BENCH_PAYMENTS=300 per client count), notification latency
 * (BENCH_SECONDS=4 at 200 events/s, backlog 400), startup and memory (5 s idle, 3 s load).
 * The bench's own variables, when set, win. The large identifier-search bench (bench:store) is not
 * in it: its million-Claim seed alone takes minutes.
 */
import { spawnSync } from 'node:child_process';

const runs: [script: string, env: Record<string, string>][] = [
  ['bench/payments.ts', { BENCH_PAYMENTS: '300' }],
  ['bench/subscriptions.ts', { BENCH_SECONDS: '4', BENCH_BACKLOG: '400' }],
  ['bench/startup.ts', { BENCH_IDLE_SECONDS: '5', BENCH_LOAD_SECONDS: '3' }],
];
for (const [script, quick] of runs) {
  const env = { ...quick, ...process.env };
  const { status } = spawnSync(process.execPath, [script], { stdio: 'inherit', env, cwd: new URL('../', import.meta.url) });
  if (status !== 0) process.exit(status ?? 1);
}
