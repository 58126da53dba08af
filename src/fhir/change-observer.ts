import type { Resource } from '@medplum/fhirtypes';
import type { Queryable } from '../db/index.ts';
import type { AccessPolicy } from './access.ts';
import type { Interaction } from './storage.ts';

/** One committed-to-be version of a resource, as observers see it. */
export interface ResourceChange {
  tenantId: string;
  /** What the writer may do: a Subscription may only watch what its owner may read. */
  access: AccessPolicy;
  interaction: Interaction;
  /** The version written; for a delete, the last live version (its meta.versionId is the old one). */
  resource: Resource;
  versionId: number;
}

export interface PrepareContext {
  conn: Queryable;
  tenantId: string;
  access: AccessPolicy;
}

/**
 * What the store tells about its writes, so that another concern (Subscriptions) can act in the
 * same transaction without the store importing it. Wired in by app.ts.
 */
export interface ChangeObserver {
  /**
   * Before validation: may normalise the resource (e.g. a Subscription's status, or its write-only
   * secret from the stored version on `conn`) or refuse it. `access` is the writer's (FULL_ACCESS
   * for the server's own writes).
   */
  prepare(resource: Resource, context: PrepareContext): Promise<Resource>;
  /**
   * A stored resource as a client may see it (write-only elements, such as a Subscription's
   * secret, masked). A patch applies to this, never to the stored content, so that a JSON Patch
   * `test` cannot confirm a guess of what is hidden; `prepare` then restores what was masked.
   */
  conceal?(resource: Resource): Resource;
  /**
   * Looks (on `conn`) for work the change causes, such as notifications to queue. Returns that work,
   * which then runs inside the write's own transaction, or undefined when there is none.
   */
  plan(conn: Queryable, change: ResourceChange): Promise<((tx: Queryable) => Promise<void>) | undefined>;
}

/**
 * Several observers as one: `prepare` runs each in turn; the work each plans runs in the write's
 * transaction in the order given (e.g. Subscriptions queue the write's notifications before
 * billing's follow-up writes queue theirs).
 */
export function composeObservers(observers: ChangeObserver[]): ChangeObserver {
  return {
    async prepare(resource: Resource, context: PrepareContext): Promise<Resource> {
      let next = resource;
      for (const o of observers) next = await o.prepare(next, context);
      return next;
    },
    conceal(resource: Resource): Resource {
      return observers.reduce((next, o) => (o.conceal ? o.conceal(next) : next), resource);
    },
    async plan(conn: Queryable, change: ResourceChange) {
      const works: ((tx: Queryable) => Promise<void>)[] = [];
      for (const o of observers) {
        const work = await o.plan(conn, change);
        if (work) works.push(work);
      }
      if (works.length === 0) return undefined;
      return async (tx: Queryable) => {
        for (const work of works) await work(tx);
      };
    },
  };
}
