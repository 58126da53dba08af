import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { Decimal } from 'decimal.js';
import type { Request } from 'express';
import { keptHeaders } from '../headers.ts';
import { bookCurrency } from '../../billing/index.ts';
import type { Queryable } from '../../db/index.ts';
import { trackWrites, writesBeyondCap, writtenIn } from '../../fhir/write-log.ts';
import type { PostgresRepository } from '../../fhir/repository.ts';
import { findDuplicate, recordEvent } from '../journal.ts';
import type { EventStatus, InboundEvent, StoredAnswer } from '../journal.ts';
import type { EnvelopeSeen, RemittanceSummary } from './import.ts';

/**
 * The journal of an 835 file. Files can be hundreds of MB and write a resource or more per claim,
 * so the journal row keeps what identifies and explains the file, not all of it:
 *   - always the file's sha-256 and byte size (the dedupe key is the sha-256);
 *   - its text up to RAW_CAP bytes, marked truncated beyond;
 *   - a summary body: ISA13 and GS06 control numbers, each transaction set's trace, status and
 *     counts (the first SUMMARY_CAP), the claim count and total paid, as the import knows them;
 *   - the resources written, the first RESOURCE_CAP with the count of the writes after them (the
 *     PaymentReconciliation lists every claim anyway).
 * An imported file (processed, or duplicate: every trace imported before) is journalled in the
 * import's transaction; a refused or failed one alone, after the rollback, with nothing else.
 */
export const RAW_CAP = 256 * 1024;
export const RESOURCE_CAP = 1000;
export const SUMMARY_CAP = 1000;

export const EVENT_TYPE = 'remittance';

/** Passes the body through, hashing and counting it and keeping its first RAW_CAP bytes. */
export class FileTap extends Transform {
  readonly #hash: Hash = createHash('sha256');
  readonly #head: Buffer[] = [];
  #kept = 0;
  bytes = 0;

  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.#hash.update(chunk);
    this.bytes += chunk.length;
    if (this.#kept < RAW_CAP) {
      const part = chunk.subarray(0, RAW_CAP - this.#kept);
      this.#head.push(Buffer.from(part));
      this.#kept += part.length;
    }
    cb(null, chunk);
  }

  /** What was seen so far (the whole file once the stream has ended). */
  file(): FileFacts {
    return { bytes: this.bytes, sha256: this.#hash.copy().digest('hex'), rawKeptBytes: this.#kept, truncated: this.bytes > this.#kept };
  }

  /** The first RAW_CAP bytes as text (X12 is ASCII; anything else is kept as Latin-1). */
  head(): string {
    return Buffer.concat(this.#head).toString('latin1');
  }
}

export interface FileFacts {
  bytes: number;
  sha256: string;
  rawKeptBytes: number;
  truncated: boolean;
}

export interface RemittanceJournal {
  tenantId: string;
  sourceId?: string;
  request: Request;
  tap: FileTap;
  envelope: EnvelopeSeen;
}

/** The summary body: the file, its envelope and what each transaction set came to. */
function summary(j: RemittanceJournal, extra: Record<string, unknown>): Record<string, unknown> {
  return { file: j.tap.file(), interchanges: j.envelope.interchanges, groups: j.envelope.groups, ...extra };
}

function event(j: RemittanceJournal, body: unknown): InboundEvent {
  const file = j.tap.file();
  return {
    tenantId: j.tenantId,
    source: 'x12-835',
    eventType: EVENT_TYPE,
    dedupeKey: file.sha256,
    canonical: { sha256: file.sha256, bytes: file.bytes },
    body,
    ...(j.sourceId && { sourceId: j.sourceId }),
    raw: { contentType: j.request.get('content-type') ?? null, text: j.tap.head(), headers: keptHeaders(j.request, ['content-encoding']) },
  };
}

/** The hooks importRemittance runs in its transaction: note writes (capped), then journal the file. */
export function journalInImport(j: RemittanceJournal, answer: (remittances: RemittanceSummary[]) => StoredAnswer) {
  let duplicateOf: string | undefined;
  return {
    async begin(tx: PostgresRepository): Promise<void> {
      trackWrites(tx.conn, RESOURCE_CAP);
      // Byte for byte a file journalled before: the duplicate row names that one.
      duplicateOf = (await findDuplicate(tx.conn, event(j, null)))?.id;
    },
    async end(tx: PostgresRepository, remittances: RemittanceSummary[]): Promise<void> {
      const created = remittances.some((r) => r.status === 'created');
      const currency = await bookCurrency(tx.conn, j.tenantId);
      const listed = writtenIn(tx.conn).length;
      const body = summary(j, {
        remittanceCount: remittances.length,
        remittances: remittances.slice(0, SUMMARY_CAP),
        claims: remittances.reduce((n, r) => n + r.claims, 0),
        totalPaid: remittances.reduce((t, r) => t.plus(r.paymentAmount), new Decimal(0)).toFixed(2),
        currency,
        resources: { listed, total: listed + writesBeyondCap(tx.conn) },
      });
      const status: EventStatus = created ? 'processed' : 'duplicate';
      await recordEvent(tx.conn, event(j, body), { status, answer: answer(remittances), ...(!created && duplicateOf && { duplicateOf }) });
    },
  };
}

/** A refused (400, 409, 413, 422) or failed (500) file: its row alone, nothing else was written. */
export async function journalAlone(
  conn: Queryable,
  j: RemittanceJournal,
  status: Extract<EventStatus, 'refused' | 'failed'>,
  answer: StoredAnswer,
  error: string,
  extra: Record<string, unknown> = {},
): Promise<void> {
  await recordEvent(conn, event(j, summary(j, { error, ...extra, resources: { listed: 0, total: 0 } })), { status, answer, error });
}
