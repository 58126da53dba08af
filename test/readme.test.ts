import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startServerProcess } from './support/process.ts';

/**
 * README.md's walkthrough, pasted into a shell in order against a fresh server started as
 * `npm start` starts it, with no edit but the printed secret (and the test server's port): every
 * ```sh block runs, `set -e`, and curl fails on any HTTP error. Blocks marked `sh norun` are skipped.
 */
const PLACEHOLDER = 'paste-the-printed-clientSecret-here';

export function runnableBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
}

function bash(script: string, cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('bash', ['-c', script], { cwd, timeout: 240_000, maxBuffer: 32 * 1024 * 1024 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('README.md', () => {
  it('its shell blocks run in order, as pasted, against a fresh server', async () => {
    const blocks = runnableBlocks(readFileSync('README.md', 'utf8'));
    expect(blocks.length).toBeGreaterThanOrEqual(4);
    expect(blocks.join('\n')).toContain(PLACEHOLDER);
    const server = await startServerProcess({ DATA_DIR: 'memory://', DATABASE_SCHEMA: `test_readme_${randomBytes(4).toString('hex')}` });
    try {
      const secret = /clientSecret: (\S+)/.exec(server.logs.join('\n'))?.[1];
      expect(secret).toBeDefined();
      const host = new URL(server.base).host;
      const script = [
        'set -euo pipefail',
        // An HTTP error is a failed command, as a reader would notice it.
        'curl() { command curl --fail-with-body --show-error "$@"; }',
        ...blocks,
      ]
        .join('\n')
        .replaceAll(PLACEHOLDER, secret!)
        .replaceAll('localhost:8080', host);
      const run = await bash(script, process.cwd());
      expect(run.stderr + run.stdout.slice(-4000), 'the walkthrough failed').toBe(run.stdout.slice(-4000));
      expect(run.code).toBe(0);
      // What the README says the seed's payment answers, and the allocation that follows it.
      expect(run.stdout).toContain('"amountSetOnClaim":100,"excessAmount":50.75');
      expect(run.stdout).toMatch(/"balance":\{"value":30\.75/);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  }, 300_000);
});
