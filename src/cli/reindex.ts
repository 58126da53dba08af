import { SUPPORTED_RESOURCE_TYPES } from '../profiles/index.ts';
import type { Database } from '../db/index.ts';
import { DEFAULT_REINDEX_BATCH, reindex } from '../fhir/reindex.ts';
import type { Progress } from './remittances.ts';

export const REINDEX_USAGE = `  reindex [--type Claim] [--tenant T] [--after T/Type/id] [--batch N] [--base URL]
                                                rebuild the search index of stored resources (after
                                                a search parameter was added); safe while the server
                                                runs; resume an interrupted run with --after its last
                                                key; --base: this server's FHIR base (default
                                                PUBLIC_BASE_URL/fhir), for absolute references`;

export const REINDEX_OPTIONS = {
  type: { type: 'string' },
  after: { type: 'string' },
  batch: { type: 'string' },
  base: { type: 'string' },
} as const;

type Values = Record<string, string | boolean | undefined>;
type Outcome = { ok: true; value: unknown } | { ok: false; message: string };

/** `reindex`: progress after every batch on stderr (its last key, to resume from), the total on stdout. */
export async function runReindex(db: Database, values: Values, usage: (message: string) => Error, progress?: Progress): Promise<Outcome> {
  const text = (name: string): string | undefined => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
  const resourceType = text('type');
  if (resourceType !== undefined && !SUPPORTED_RESOURCE_TYPES.includes(resourceType)) throw usage(`--type: not a resource type this server stores: ${resourceType}`);
  const batch = text('batch') === undefined ? DEFAULT_REINDEX_BATCH : Number(text('batch'));
  if (!Number.isInteger(batch) || batch < 1 || batch > 10_000) throw usage('--batch must be a whole number from 1 to 10000');
  const afterText = text('after');
  const afterParts = afterText?.split('/');
  if (afterParts && (afterParts.length !== 3 || afterParts.some((part) => part === ''))) throw usage('--after must be TENANT/Type/id, as a previous run printed');
  const after = afterParts && { tenantId: afterParts[0], resourceType: afterParts[1], id: afterParts[2] };
  const publicBase = process.env.PUBLIC_BASE_URL?.replace(/\/$/, '');
  const base = text('base')?.replace(/\/$/, '') ?? (publicBase && `${publicBase}/fhir`);
  const keyText = (key: { tenantId: string; resourceType: string; id: string }): string => `${key.tenantId}/${key.resourceType}/${key.id}`;
  const result = await reindex(db, { tenantId: text('tenant'), resourceType, after, batchSize: batch, localBases: base ? [base] : [] }, (p) =>
    progress?.(`reindexed ${p.reindexed}, last ${keyText(p.last!)}`),
  );
  progress?.(`reindexed ${result.reindexed}`, true);
  return { ok: true, value: { reindexed: result.reindexed, ...(result.last && { last: keyText(result.last) }) } };
}
