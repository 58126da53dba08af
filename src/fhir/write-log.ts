import type { Queryable } from '../db/index.ts';
import type { ChangeObserver } from './change-observer.ts';

/**
 * Which resources a transaction wrote (`Type/id`, in write order), so that whoever commits it (the
 * inbound journal) can say what a message wrote without each sender listing it: the repository
 * reports every write to its observer, including the ones billing makes in the same transaction
 * (a credit, a re-matched payment). Only transactions that asked (`trackWrites`) are noted, so any
 * other write keeps its plain path (a write with no work planned needs no transaction of its own).
 * Kept by the transaction's handle, which each transaction gets afresh (db/), so it goes with it.
 */
interface Log {
  list: string[];
  seen: Set<string>;
  /** Keep at most this many references; later writes of others are only counted. */
  cap: number;
  /** Writes after the cap of resources not in `list` (each counts once per write). */
  beyond: number;
}
const written = new WeakMap<Queryable, Log>();

export const writeLog: ChangeObserver = {
  prepare: async (resource) => resource,
  async plan(conn, change) {
    const log = written.get(conn);
    if (!log) return undefined;
    const reference = `${change.resource.resourceType}/${change.resource.id}`;
    // Noted when the version is stored (the work runs with the write), not when it is planned.
    return async () => {
      if (log.seen.has(reference)) return;
      if (log.list.length < log.cap) {
        log.list.push(reference);
        log.seen.add(reference);
      } else {
        log.beyond++;
      }
    };
  },
};

/**
 * From now on, note what the transaction whose handle is `conn` writes. `cap` bounds what is kept
 * (an 835 import writes a resource or more per claim, and memory must not grow with the file):
 * the first `cap` distinct resources are kept, and each later write of another one is only counted
 * (so beyond the cap a resource written twice counts twice: remembering them all is what the cap avoids).
 */
export function trackWrites(conn: Queryable, cap = Number.POSITIVE_INFINITY): void {
  if (!written.has(conn)) written.set(conn, { list: [], seen: new Set(), cap, beyond: 0 });
}

/** The resources written so far in the transaction whose handle is `conn` (none unless tracked). */
export function writtenIn(conn: Queryable): string[] {
  return [...(written.get(conn)?.list ?? [])];
}

/** The writes noted after the cap (0 without one): what `writtenIn` leaves out. */
export function writesBeyondCap(conn: Queryable): number {
  return written.get(conn)?.beyond ?? 0;
}
