import { existsSync, readFileSync } from 'node:fs';

/**
 * Who used the cores during a phase, read from /proc: CPU seconds of the server process, of the
 * given PostgreSQL processes (this bench's backends and the cluster's writers), of this load
 * generator, and the rest of the machine's busy time (kernel, anyone else's processes and
 * backends). Linux with PostgreSQL on the same machine; elsewhere the figures mean little, and
 * `sample()` returns undefined without /proc.
 */
export interface CpuSample {
  at: number;
  /** Busy CPU seconds of the whole machine (all cores), from /proc/stat. */
  machine: number;
  server: number;
  /** CPU seconds of each PostgreSQL process sampled, by pid. */
  postgres: Map<string, number>;
  bench: number;
}

export interface CpuShare {
  /** Each in % of one core over the interval. */
  server: number;
  postgres: number;
  bench: number;
  /** The rest of the machine's busy time: the kernel's network stack, other processes. */
  rest: number;
}

const TICKS_PER_SECOND = 100; // USER_HZ, 100 on every Linux architecture we run on

function cpuSeconds(pid: string): { seconds: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const fields = stat.slice(close + 2).split(' ');
    // utime and stime are fields 14 and 15 of /proc/pid/stat, 12 and 13 after the ')'.
    return { seconds: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND };
  } catch {
    return undefined; // exited meanwhile
  }
}

export function sample(serverPid: number, postgresPids: Iterable<number>): CpuSample | undefined {
  if (!existsSync('/proc/stat')) return undefined;
  const postgres = new Map<string, number>();
  for (const pid of postgresPids) {
    const p = cpuSeconds(String(pid));
    if (p) postgres.set(String(pid), p.seconds);
  }
  const usage = process.cpuUsage();
  return {
    at: performance.now(),
    machine: machineBusySeconds(),
    server: cpuSeconds(String(serverPid))?.seconds ?? Number.NaN,
    postgres,
    bench: (usage.user + usage.system) / 1e6,
  };
}

/**
 * CPU use between two samples. PostgreSQL: the growth of every process sampled at the end (all of
 * it for one started meanwhile); one that exited in between is missed, an underestimate.
 */
export function share(from: CpuSample | undefined, to: CpuSample | undefined): CpuShare | undefined {
  if (!from || !to) return undefined;
  const wall = (to.at - from.at) / 1000;
  const pct = (seconds: number): number => (100 * seconds) / wall;
  let postgres = 0;
  for (const [pid, seconds] of to.postgres) postgres += seconds - (from.postgres.get(pid) ?? 0);
  const server = to.server - from.server;
  const bench = to.bench - from.bench;
  const rest = to.machine - from.machine - server - postgres - bench;
  return { server: pct(server), postgres: pct(postgres), bench: pct(bench), rest: pct(rest) };
}

/** user + nice + system + irq + softirq + steal of the `cpu` line of /proc/stat, in seconds. */
function machineBusySeconds(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = fields;
  return (user + nice + system + irq + softirq + steal) / TICKS_PER_SECOND;
}
