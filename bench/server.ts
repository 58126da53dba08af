import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

/**
 * The node flags and environment `npm start` runs the server with (package.json's start script),
 * which every bench's server gets, so that the figures are npm start's.
 */
const START_WORDS = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: { start: string } }).scripts.start.split(/\s+/);
export const START_FLAGS = START_WORDS.filter((word) => word.startsWith('--'));
export const START_ENV: Record<string, string> = Object.fromEntries(START_WORDS.filter((word) => /^[A-Z_]+=/.test(word)).map((word) => word.split('=', 2)));
/** BENCH_SERVER_NODE_ARGS: more node flags for every bench's server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" or "--trace-gc". */
const EXTRA_FLAGS = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);

/** The real server, `node src/main.ts` with npm start's flags, as a child process on a port of our choosing. */
export interface RunningServer {
  baseUrl: string;
  pid: number;
  /** From spawning the process to its first healthy answer (or its worker's start line). */
  readyMs: number;
  /** SIGTERM, then wait for the process to exit (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
  /** The last lines the server wrote (stdout and stderr go to `logFile`). */
  logTail(lines?: number): string;
}

export interface ServerOptions {
  /** Absent: the embedded database (DATA_DIR from `env`, else the server's default). */
  databaseUrl?: string;
  schema?: string;
  /** Node flags for the server process besides npm start's, e.g. ['--cpu-prof']. */
  nodeArgs?: string[];
  /** Arguments for src/main.ts, e.g. ['--role=worker']. */
  args?: string[];
  /** Where the server's stdout and stderr go (truncated first). */
  logFile: string;
  /** More environment for the server (e.g. the bootstrap client the bench authenticates as). */
  env?: Record<string, string>;
  startTimeoutMs?: number;
}

const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));

/** A port the OS says is free right now (bound to :0, read, released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const port = await freePort();
  const log = openSync(options.logFile, 'w');
  const env: NodeJS.ProcessEnv = { ...process.env, ...START_ENV, PORT: String(port), LOG_LEVEL: 'warn', ...options.env };
  delete env.DATABASE_URL;
  delete env.DATABASE_SCHEMA;
  if (options.databaseUrl) env.DATABASE_URL = options.databaseUrl;
  if (options.schema) env.DATABASE_SCHEMA = options.schema;
  const spawnedAt = performance.now();
  const child = spawn(process.execPath, [...START_FLAGS, ...EXTRA_FLAGS, ...(options.nodeArgs ?? []), 'src/main.ts', ...(options.args ?? [])], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', log, log],
  });
  closeSync(log); // the child has its own descriptor
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const baseUrl = `http://127.0.0.1:${port}`;
  const logTail = (lines = 20): string => readFileSync(options.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  try {
    // A worker-only process serves no HTTP: it is ready when it says so.
    if (options.args?.includes('--role=worker')) await waitForLog(options.logFile, 'delivery worker started', child, options.startTimeoutMs ?? 60_000);
    else await waitForHealthy(baseUrl, child, options.startTimeoutMs ?? 60_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}; server log:\n${logTail()}`);
  }
  const readyMs = performance.now() - spawnedAt;
  return {
    baseUrl,
    pid: child.pid!,
    readyMs,
    logTail,
    async stop(graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function waitForHealthy(baseUrl: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with code ${child.exitCode} before it was healthy`);
    try {
      const res = await fetch(`${baseUrl}/healthz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server not healthy at ${baseUrl}/healthz after ${timeoutMs} ms`);
}

async function waitForLog(logFile: string, text: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with code ${child.exitCode} before it was ready`);
    if (readFileSync(logFile, 'utf8').includes(text)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server did not log '${text}' within ${timeoutMs} ms`);
}
