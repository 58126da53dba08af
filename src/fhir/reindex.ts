import type { Database } from '../db/index.ts';
import { extractSearchIndex } from './search/index-values.ts';
import { replaceSearchIndex, selectForReindex } from './storage.ts';
import type { ResourceKey } from './storage.ts';

/**
 * Rebuilds the search index rows of stored resources from their current version. Index rows are
 * written with each version (storage.ts writeVersion), so a search parameter added later (one of
 * ours in fhir-profiles/, or one a server upgrade starts indexing) finds nothing written before it
 * until those resources are reindexed.
 *
 * Batched in key order (tenant, type, id), one transaction per batch holding the batch's rows
 * FOR UPDATE, so it runs while the server serves: a concurrent write of the same resource waits for
 * the batch and then indexes its own version. Resumable: `after` is the last key a previous run
 * reported; reindexing a resource twice writes the same rows.
 */
export interface ReindexOptions {
  tenantId?: string;
  resourceType?: string;
  /** Start after this key (the `last` a previous, interrupted run reported). */
  after?: ResourceKey;
  batchSize?: number;
  /** Stop after about this many (at a batch's end): one bounded step of a longer run. */
  limit?: number;
  /** This server's FHIR bases: absolute references under them are indexed as local (references.ts). */
  localBases?: readonly string[];
}

export interface ReindexResult {
  reindexed: number;
  /** The last key reindexed: pass it as `after` to resume. Absent when nothing was. */
  last?: ResourceKey;
  /** No resource is left after `last`; false when `limit` stopped the run first. */
  done: boolean;
}

export const DEFAULT_REINDEX_BATCH = 500;

export async function reindex(db: Database, options: ReindexOptions = {}, onBatch?: (progress: ReindexResult) => void): Promise<ReindexResult> {
  const batchSize = options.batchSize ?? DEFAULT_REINDEX_BATCH;
  const filter = { tenantId: options.tenantId, resourceType: options.resourceType };
  let last = options.after;
  let reindexed = 0;
  for (;;) {
    const size = Math.min(batchSize, (options.limit ?? Infinity) - reindexed);
    if (size <= 0) return { reindexed, done: false, ...(last && last !== options.after && { last }) };
    // The key is taken from the committed batch: a retried transaction must not have moved it.
    const keys = await db.transaction(async (tx) => {
      const rows = await selectForReindex(tx, filter, last, size);
      for (const row of rows) {
        const key = { tenantId: row.tenantId, resourceType: row.resourceType, id: row.id };
        await replaceSearchIndex(tx, key, extractSearchIndex(JSON.parse(row.content), options.localBases));
      }
      return rows.map(({ tenantId, resourceType, id }) => ({ tenantId, resourceType, id }));
    });
    const count = keys.length;
    if (count > 0) last = keys[count - 1];
    reindexed += count;
    if (count > 0) onBatch?.({ reindexed, last, done: count < size });
    if (count < size) return { reindexed, done: true, ...(last && last !== options.after && { last }) };
  }
}
