import { Agent, request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { startServerProcess } from '../support/process.ts';
import type { ServerProcess } from '../support/process.ts';

/** GET over `agent`: the status, the Connection header, and whether it went over a kept-alive socket; rejects on a reset. */
function get(agent: Agent, url: string): Promise<{ status: number; connection: string | undefined; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection, reused: req.reusedSocket }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Resolves when the server has logged a line containing `text` (already, or later); rejects if it exits first. */
function logged(server: ServerProcess, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const seen = (): boolean => server.logs.some((l) => l.includes(text));
    if (seen()) return resolve();
    const check = (): void => {
      if (!seen()) return;
      server.child.stdout!.off('data', check);
      resolve();
    };
    // After process.ts's own listener, which has pushed the line by the time this one runs.
    server.child.stdout!.on('data', check);
    void server.exited.then((code) => reject(new Error(`the server exited (${code}) before logging "${text}":\n${server.logs.join('\n')}`)));
  });
}

describe('SIGTERM under keep-alive', () => {
  it('answers a request sent on an idle keep-alive connection while draining, with Connection: close', async () => {
    // No timer of the server's may decide the outcome: the idle grace and the drain limit are far
    // beyond the test's own timeout, so however slow this process is, the request arrives inside
    // them, and the server exits when its last connection ends (an event), not when a timer fires.
    const server = await startServerProcess({
      DATA_DIR: 'memory://',
      DATABASE_SCHEMA: `test_drain_${randomBytes(4).toString('hex')}`,
      SHUTDOWN_IDLE_GRACE_MS: '3600000',
      SHUTDOWN_TIMEOUT_MS: '3600000',
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const before = await get(agent, `${server.base}/healthz`);
      expect(before).toMatchObject({ status: 200, reused: false });
      expect(before.connection).not.toBe('close');
      server.child.kill('SIGTERM');
      await logged(server, 'stopping: no new work');
      const during = await get(agent, `${server.base}/healthz`);
      expect(during).toEqual({ status: 200, connection: 'close', reused: true });
      expect(await server.exited).toBe(0);
    } finally {
      agent.destroy();
      server.child.kill('SIGKILL');
    }
  }, 120_000);
});
