import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataDirectoryInUseError, LOCK_FILE, lockDataDirectory } from '../../src/db/lock.ts';

/** The data directory lock on its own (two real server processes: test/main.test.ts). */
const root = mkdtempSync(join(tmpdir(), 'fhir-billing-lock-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function dir(name: string): string {
  const path = join(root, name);
  rmSync(path, { recursive: true, force: true });
  mkdirSync(path, { recursive: true });
  return path;
}

/** The pid of a process that has exited: what a lock left by kill -9 names. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(String(child.stdout));
}

describe('the data directory lock', () => {
  it('holds the owner pid, refuses a second opener and is removed on release', async () => {
    const data = dir('held');
    const lock = await lockDataDirectory(data);
    expect(JSON.parse(readFileSync(join(data, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
    const refused = await lockDataDirectory(data).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DataDirectoryInUseError);
    expect((refused as Error).message).toContain(`in use by process ${process.pid}`);
    lock.release();
    expect(existsSync(join(data, LOCK_FILE))).toBe(false);
    (await lockDataDirectory(data)).release();
  });

  it('refuses a lock a live process holds', async () => {
    const data = dir('live');
    // The parent of this process is alive for as long as the test runs.
    writeFileSync(join(data, LOCK_FILE), JSON.stringify({ pid: process.ppid }));
    await expect(lockDataDirectory(data)).rejects.toThrow(`in use by process ${process.ppid}`);
    expect(JSON.parse(readFileSync(join(data, LOCK_FILE), 'utf8')).pid).toBe(process.ppid);
  });

  it('takes over a lock whose process is dead, or that is unreadable', async () => {
    for (const stale of [JSON.stringify({ pid: deadPid() }), '{"pid": 12', '']) {
      const data = dir('stale');
      writeFileSync(join(data, LOCK_FILE), stale);
      const lock = await lockDataDirectory(data);
      expect(JSON.parse(readFileSync(join(data, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
      lock.release();
    }
  });

  it('lets only one of several processes starting at once take a stale lock over', async () => {
    const data = dir('race');
    writeFileSync(join(data, LOCK_FILE), JSON.stringify({ pid: deadPid() }));
    const lockModule = new URL('../../src/db/lock.ts', import.meta.url).href;
    // Each opener reports, and a winner holds its lock until it is killed, so none can win late.
    const script = `import(${JSON.stringify(lockModule)}).then((m) => m.lockDataDirectory(${JSON.stringify(data)})).then(
      () => { console.log('won'); setInterval(() => {}, 1000); },
      (e) => console.log(e.code === 'DATA_DIR_IN_USE' ? 'refused' : 'failed: ' + e.message))`;
    const openers = Array.from({ length: 4 }, () => spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] }));
    try {
      const outcomes = await Promise.all(openers.map((child) => new Promise<string>((resolve) => child.stdout.once('data', (d) => resolve(String(d).trim())))));
      expect([...outcomes].sort()).toEqual(['refused', 'refused', 'refused', 'won']);
      expect(JSON.parse(readFileSync(join(data, LOCK_FILE), 'utf8')).pid).toBe(openers[outcomes.indexOf('won')]!.pid);
    } finally {
      for (const child of openers) child.kill('SIGKILL');
    }
  });
});
