import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

export interface PgbenchResult {
  clients: number;
  seconds: number;
  scale: number;
  tps: number;
  latencyMs: number;
}

/**
 * The machine's raw PostgreSQL rate, so that figures from different machines can be compared:
 * pgbench's TPC-B-like transaction (`pgbench -c 8 -j 2 -T 10`) in a scratch database next to the
 * bench's own (created, initialised with `pgbench -i`, dropped again), on the same server.
 */
export async function pgbenchTpcB(databaseUrl: string, options = { clients: 8, threads: 2, seconds: 10, scale: 8 }): Promise<PgbenchResult> {
  const url = new URL(databaseUrl);
  const scratch = `${url.pathname.slice(1) || 'postgres'}_pgbench`;
  const admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  const target = new URL(databaseUrl);
  target.pathname = `/${scratch}`;
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(scratch)}`);
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(scratch)}`);
    await run('pgbench', ['-i', '-q', '-s', String(options.scale), target.href], { maxBuffer: 1 << 24 });
    const { stdout } = await run(
      'pgbench',
      ['-c', String(options.clients), '-j', String(options.threads), '-T', String(options.seconds), target.href],
      { maxBuffer: 1 << 24 },
    );
    const tps = Number(/tps = ([\d.]+)/.exec(stdout)?.[1]);
    const latencyMs = Number(/latency average = ([\d.]+) ms/.exec(stdout)?.[1]);
    if (!Number.isFinite(tps)) throw new Error(`pgbench printed no tps:\n${stdout}`);
    return { clients: options.clients, seconds: options.seconds, scale: options.scale, tps, latencyMs };
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(scratch)}`).catch(() => {});
    await admin.end();
  }
}
