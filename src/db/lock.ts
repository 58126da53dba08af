import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * One process at a time on an embedded data directory. PGlite takes no lock of its own, so two
 * processes on one directory both start, both acknowledge writes, and one's writes are lost. The
 * lock is a file created atomically (O_EXCL) holding the owner's pid; a lock whose pid is dead (a
 * kill -9, a crash) is stale and taken over; it is removed on close and on exit.
 */
export const LOCK_FILE = 'fhir-billing.lock';

export class DataDirectoryInUseError extends Error {
  readonly code = 'DATA_DIR_IN_USE';
  readonly dataDir: string;
  readonly pid: number;
  constructor(dataDir: string, pid: number, lockFile: string) {
    super(
      `The embedded database in ${dataDir} is in use by process ${pid} (it allows one process at a time). ` +
        `If no such process is running any more, remove ${lockFile}.`,
    );
    this.dataDir = dataDir;
    this.pid = pid;
  }
}

export interface DataDirectoryLock {
  readonly path: string;
  release(): void;
}

/** Lock files this process holds: a second opener inside one process is refused as well. */
const held = new Set<string>();

export async function lockDataDirectory(dataDir: string): Promise<DataDirectoryLock> {
  const path = join(resolve(dataDir), LOCK_FILE);
  if (held.has(path)) throw new DataDirectoryInUseError(dataDir, process.pid, path);
  held.add(path);
  try {
    for (let attempt = 1; ; attempt++) {
      if (tryCreate(path)) break;
      const owner = readOwner(path);
      // Our own pid in a lock we do not hold is a previous life's (a container's pid 1 after a restart).
      if (owner !== undefined && owner !== process.pid && isAlive(owner)) throw new DataDirectoryInUseError(dataDir, owner, path);
      if (attempt > 3) throw new DataDirectoryInUseError(dataDir, owner ?? 0, path);
      // Unreadable: perhaps another starter is writing it this instant; look again before taking it.
      if (owner === undefined && attempt === 1) await sleep(50);
      else await takeOverStale(path, owner);
    }
  } catch (err) {
    held.delete(path);
    throw err;
  }
  const onExit = (): void => release();
  function release(): void {
    if (!held.delete(path)) return;
    process.off('exit', onExit);
    if (readOwner(path) === process.pid) unlinkSync(path);
  }
  process.on('exit', onExit);
  return { path, release };
}

function tryCreate(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    writeSync(fd, `${JSON.stringify({ pid: process.pid, since: new Date().toISOString() })}\n`);
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Two starters may find one stale lock at once; a guard file (itself O_EXCL) lets only one remove
 * it, so neither removes the lock the other has just made.
 */
async function takeOverStale(path: string, stalePid: number | undefined): Promise<void> {
  const guard = `${path}.takeover`;
  if (!tryCreate(guard)) {
    // Someone is taking over now (a few microseconds); a guard left by a crash is removed.
    await sleep(50);
    const guardOwner = readOwner(guard);
    if (guardOwner === undefined || guardOwner === process.pid || !isAlive(guardOwner)) unlinkQuietly(guard);
    return;
  }
  try {
    if (readOwner(path) === stalePid) unlinkQuietly(path);
  } finally {
    unlinkQuietly(guard);
  }
}

/** The pid a lock file names; undefined when it is missing or unreadable (a crash mid-write). */
function readOwner(path: string): number | undefined {
  try {
    const pid = (JSON.parse(readFileSync(path, 'utf8')) as { pid?: unknown }).pid;
    return typeof pid === 'number' && Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
