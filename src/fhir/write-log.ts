import type { Queryable } from '../db/index.ts';
import type { ChangeObserver } from './change-observer.ts';

/**
 * Which resources a transaction wrote (`Type/id`, in write order), so that whoever commits it (the
 * inbound journal) can say what a message wrote without each sender listing it: the repository
 * reports every write to its observer, including the ones billing makes in the same transaction
 * (a credit, a re-matched payment). Kept by the transaction's handle, which each transaction gets
 * afresh (db/), so it goes with the transaction; nothing is kept for writes outside one.
 */
const written = new WeakMap<Queryable, string[]>();

export const writeLog: ChangeObserver = {
  prepare: async (resource) => resource,
  async plan(conn, change) {
    const reference = `${change.resource.resourceType}/${change.resource.id}`;
    // Recorded when the version is stored (the work runs with the write), not when it is planned.
    return async () => {
      const list = written.get(conn) ?? [];
      if (!list.includes(reference)) list.push(reference);
      written.set(conn, list);
    };
  },
};

/** The resources written so far in the transaction whose handle is `conn`. */
export function writtenIn(conn: Queryable): string[] {
  return [...(written.get(conn) ?? [])];
}
