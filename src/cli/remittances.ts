import { createReadStream, statSync } from 'node:fs';
import { Transform, pipeline } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { tenantExists } from '../auth/index.ts';
import { billingObserver } from '../billing/index.ts';
import type { Database } from '../db/index.ts';
import { FULL_ACCESS } from '../fhir/access.ts';
import { composeObservers } from '../fhir/change-observer.ts';
import type { ChangeObserver } from '../fhir/change-observer.ts';
import { PostgresRepository } from '../fhir/repository.ts';
import { importRemittance } from '../inbound/x12-835/import.ts';
import { subscriptionObserver } from '../subscriptions/index.ts';

export const REMITTANCE_USAGE = `  remittance import FILE --tenant T             import a payer's X12 835 file (as POST /api/remittances);
                                                progress on stderr; nothing is written from a refused file`;

export type Progress = (line: string, final?: boolean) => void;

/**
 * `remittance import FILE --tenant T`: the file streams through the same importer as the
 * endpoint, with the server's observers (Subscriptions are notified, waiting credit applies).
 * Progress (claims and bytes read) goes to `progress` about every 1% of the file.
 */
export async function importRemittanceFile(db: Database, file: string, tenant: string, progress?: Progress): Promise<{ ok: true; value: unknown } | { ok: false; message: string }> {
  if (!(await tenantExists(db, tenant))) return { ok: false, message: `Unknown tenant: ${tenant}` };
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    return { ok: false, message: `Cannot read ${file}` };
  }
  const observer: ChangeObserver = composeObservers([subscriptionObserver({ allowPrivateNetworks: false }), billingObserver({ db, observer: () => observer })]);
  const repo = new PostgresRepository(db, { tenantId: tenant, access: FULL_ACCESS, baseUrl: '' }, { observer });
  const counter = new Counter();
  let claims = 0;
  let shown = -1;
  const show = (final = false): void => {
    const percent = size === 0 ? 100 : Math.floor((counter.bytes / size) * 100);
    if (!final && percent === shown) return;
    shown = percent;
    progress?.(`${claims} claims, ${percent}% of ${(size / 1024 / 1024).toFixed(1)} MB`, final);
  };
  const result = await importRemittance(repo, pipeline(createReadStream(file), counter, () => {}), { onClaim: (n) => { claims = n; show(); } });
  show(true);
  if (!result.ok) return { ok: false, message: result.message };
  return { ok: true, value: { remittances: result.remittances } };
}

class Counter extends Transform {
  bytes = 0;
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}
