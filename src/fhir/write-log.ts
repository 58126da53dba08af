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
const written = new WeakMap<Queryable, string[]>();

export const writeLog: ChangeObserver = {
  prepare: async (resource) => resource,
  async plan(conn, change) {
    const list = written.get(conn);
    if (!list) return undefined;
    const reference = `${change.resource.resourceType}/${change.resource.id}`;
    // Noted when the version is stored (the work runs with the write), not when it is planned.
    return async () => {
      if (!list.includes(reference)) list.push(reference);
    };
  },
};

/** From now on, note what the transaction whose handle is `conn` writes. */
export function trackWrites(conn: Queryable): void {
  if (!written.has(conn)) written.set(conn, []);
}

/** The resources written so far in the transaction whose handle is `conn` (none unless tracked). */
export function writtenIn(conn: Queryable): string[] {
  return [...(written.get(conn) ?? [])];
}
