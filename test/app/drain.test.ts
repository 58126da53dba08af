import { Agent, request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { startServerProcess } from '../support/process.ts';

/** GET over `agent`, resolving with the status and the Connection header, or rejecting on a reset. */
function get(agent: Agent, url: string): Promise<{ status: number; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('SIGTERM under keep-alive', () => {
  it('answers a request sent on an idle keep-alive connection while draining, with Connection: close', async () => {
    const server = await startServerProcess({ DATA_DIR: 'memory://', DATABASE_SCHEMA: `test_drain_${randomBytes(4).toString('hex')}` });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      expect((await get(agent, `${server.base}/healthz`)).status).toBe(200);
      server.child.kill('SIGTERM');
      for (let i = 0; i < 100 && !server.logs.some((l) => l.includes('stopping: no new work')); i++) await new Promise((r) => setTimeout(r, 20));
      const during = await get(agent, `${server.base}/healthz`);
      expect(during).toEqual({ status: 200, connection: 'close' });
      expect(await server.exited).toBe(0);
    } finally {
      agent.destroy();
      server.child.kill('SIGKILL');
    }
  }, 120_000);
});
