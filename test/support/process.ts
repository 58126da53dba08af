import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/** The real entry point (`node src/main.ts`, as `npm start` runs it) in a child process. */
export interface ServerProcess {
  child: ChildProcess;
  base: string;
  logs: string[];
  exited: Promise<number | null>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** The test's environment with `env` over it; a variable given as undefined is removed. */
export function processEnv(env: Record<string, string | undefined>): Record<string, string> {
  const merged: Record<string, string | undefined> = { ...process.env, ...env };
  return Object.fromEntries(Object.entries(merged).filter((e): e is [string, string] => e[1] !== undefined));
}

/**
 * Starts the server with `env` on a free port and waits until it is ready: /healthz for a process
 * that serves HTTP, the worker's start line for `--role=worker`.
 */
export async function startServerProcess(env: Record<string, string | undefined>, args: string[] = []): Promise<ServerProcess> {
  const port = await freePort();
  const logs: string[] = [];
  const child = spawn(process.execPath, ['src/main.ts', ...args], {
    env: processEnv({ PORT: String(port), LOG_LEVEL: 'info', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let buffered = '';
  child.stdout!.on('data', (d) => {
    const lines = (buffered + String(d)).split('\n');
    buffered = lines.pop()!;
    logs.push(...lines.filter(Boolean));
  });
  child.stderr!.on('data', (d) => logs.push(String(d)));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let gone = false;
  void exited.then(() => (gone = true));
  const base = `http://127.0.0.1:${port}`;
  const workerOnly = args.includes('--role=worker');
  // Readiness is waited for by deadline, not asserted: a loaded machine may take a minute to start.
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline && !gone) {
    const ready = workerOnly
      ? logs.some((l) => l.includes('delivery worker started'))
      : await fetch(`${base}/healthz`).then((r) => r.ok, () => false);
    if (ready) return { child, base, logs, exited };
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`server did not become ready:\n${logs.join('\n')}`);
}

/** POST /api/token as the Cair contract (seeds/000) does, with the bootstrap credentials. */
export async function fetchToken(base: string, credentials: { clientId: string; clientSecret: string }): Promise<string> {
  const res = await fetch(`${base}/api/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(credentials),
  });
  if (res.status !== 200) throw new Error(`token request failed: ${res.status} ${await res.text()}`);
  return (await res.json()).accessToken;
}
