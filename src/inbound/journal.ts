import { createHash } from 'node:crypto';
import type { Database, Queryable } from '../db/index.ts';
import type { PostgresRepository } from '../fhir/repository.ts';
import { trackWrites, writtenIn } from '../fhir/write-log.ts';

/**
 * The inbound event journal (`inbound_event`): every webhook event, as received, with what we
 * answered, written in the same transaction as the billing command it causes (so a committed
 * payment always has its event, and a rolled-back one leaves a `failed` row written afterwards).
 *
 * Deduplication: an event's dedupe key is the sender's identity of it (for Cair, the payment's
 * identity). Events with one key take a transaction lock on it, so they are judged one at a time;
 * an event whose content equals that of the last *processed* event with its key is a duplicate: it
 * is journalled as such and answered with the first answer, and nothing else runs. Any other
 * content (a resend the sender documents as an update) is processed.
 */
export type EventStatus = 'processed' | 'duplicate' | 'unmatched' | 'refused' | 'failed';

export interface InboundEvent {
  tenantId: string;
  source: string;
  eventType: string;
  dedupeKey: string;
  /** The event's content in a canonical form (what decides "the same event"). */
  canonical: unknown;
  /** The body as received (for XML and NVP: the fields we read from it; the text is in `raw`). */
  body: unknown;
  /** The webhook source it came through (inbound/sources/), when the sender has one. */
  sourceId?: string;
  /** What came in, as it came: the body text, its Content-Type and the headers worth keeping. */
  raw?: RawMessage;
}

export interface RawMessage {
  contentType: string | null;
  text: string;
  headers: Record<string, string>;
}

export interface StoredAnswer {
  status: number;
  body: unknown;
}

export function contentHash(canonical: unknown): string {
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}

/**
 * Takes the event's dedupe lock (until the transaction ends), starts noting the transaction's
 * writes for the journal, and returns the answer of an earlier
 * event with the same key and content whose outcome is final for its sender (`settled`: processed;
 * InstaMed also counts unmatched, since it was answered "stored" and must not be judged again),
 * if there is one.
 */
export async function findDuplicate(
  conn: Queryable,
  e: InboundEvent,
  settled: readonly EventStatus[] = ['processed'],
): Promise<{ id: string; answer: StoredAnswer } | undefined> {
  await conn.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`inbound|${e.tenantId}|${e.source}|${e.dedupeKey}`]);
  // What the event's command writes from here on is recorded with it (recordEvent).
  trackWrites(conn);
  const rows = await conn.query<{ id: string; content_hash: string; response: string }>(
    `SELECT id::text, content_hash, response FROM inbound_event
      WHERE tenant_id = $1 AND source = $2 AND dedupe_key = $3 AND status = ANY($4::text[])
      ORDER BY inbound_event.id DESC LIMIT 1`,
    [e.tenantId, e.source, e.dedupeKey, settled],
  );
  const last = rows[0];
  if (!last || last.content_hash !== contentHash(e.canonical)) return undefined;
  return { id: last.id, answer: JSON.parse(last.response) as StoredAnswer };
}

/**
 * Journals one event with its outcome and the answer given, and the resources its transaction wrote
 * (call it on the transaction that ran the command, after the command).
 */
export async function recordEvent(
  conn: Queryable,
  e: InboundEvent,
  outcome: { status: EventStatus; answer?: StoredAnswer; error?: string; duplicateOf?: string },
): Promise<void> {
  await conn.query(
    `INSERT INTO inbound_event (tenant_id, source, event_type, dedupe_key, content_hash, body, status, response, error, duplicate_of,
                                source_id, content_type, raw_body, headers, resources)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::bigint, $11, $12, $13, $14::jsonb, $15::jsonb)`,
    [
      e.tenantId, e.source, e.eventType, e.dedupeKey, contentHash(e.canonical), JSON.stringify(e.body ?? null), outcome.status,
      outcome.answer === undefined ? null : JSON.stringify(outcome.answer), outcome.error ?? null, outcome.duplicateOf ?? null,
      e.sourceId ?? null, e.raw?.contentType ?? null, e.raw?.text ?? null, e.raw ? JSON.stringify(e.raw.headers) : null,
      JSON.stringify(writtenIn(conn)),
    ],
  );
}

/** What a sender's billing command came to: the journal's status for it and the answer to give. */
export interface Handled {
  status: EventStatus;
  answer: StoredAnswer;
}

/**
 * One sender's event, in ONE transaction: the dedupe lock; a duplicate is journalled as such and
 * answered with the first answer (`duplicateAnswer` may reshape it), and nothing else runs;
 * otherwise `handle` runs the sender's billing command and its outcome is journalled with the
 * answer. A throw rolls everything back: the caller journals the failure (`recordAlone`).
 */
export async function handleOnce(
  repo: PostgresRepository,
  event: InboundEvent,
  handle: (tx: PostgresRepository) => Promise<Handled>,
  options: { settled?: readonly EventStatus[]; duplicateAnswer?: (first: StoredAnswer) => StoredAnswer } = {},
): Promise<StoredAnswer> {
  return repo.withTransaction(async (tx) => {
    const duplicate = await findDuplicate(tx.conn, event, options.settled);
    if (duplicate) {
      const answer = options.duplicateAnswer?.(duplicate.answer) ?? duplicate.answer;
      await recordEvent(tx.conn, event, { status: 'duplicate', answer, duplicateOf: duplicate.id });
      return answer;
    }
    const done = await handle(tx);
    await recordEvent(tx.conn, event, { status: done.status, answer: done.answer });
    return done.answer;
  });
}

/**
 * Journals an event in a transaction of its own (a refusal, or a failure after the rollback, so
 * the event is never lost); a failure to do so is only reported to `onError` (the caller logs it).
 */
export async function recordAlone(
  db: Database,
  event: InboundEvent,
  outcome: { status: EventStatus; answer: StoredAnswer; error?: string },
  onError: (err: unknown) => void,
): Promise<void> {
  await db.transaction((tx) => recordEvent(tx, event, outcome)).catch(onError);
}

export interface JournalRow {
  id: string;
  source: string;
  eventType: string;
  dedupeKey: string;
  status: EventStatus;
  body: unknown;
  response: StoredAnswer | null;
  error: string | null;
  duplicateOf: string | null;
  sourceId: string | null;
  contentType: string | null;
  rawBody: string | null;
  headers: Record<string, string> | null;
}

/** The tenant's journal, oldest first (for operators and tests). */
export async function listEvents(conn: Queryable, tenantId: string, source?: string): Promise<JournalRow[]> {
  const rows = await conn.query<Omit<JournalRow, 'body' | 'response' | 'headers'> & { body: string; response: string | null; headers: string | Record<string, string> | null }>(
    `SELECT id::text, source, event_type AS "eventType", dedupe_key AS "dedupeKey", status, body, response, error, duplicate_of::text AS "duplicateOf",
            source_id AS "sourceId", content_type AS "contentType", raw_body AS "rawBody", headers
       FROM inbound_event WHERE tenant_id = $1 AND ($2::text IS NULL OR source = $2) ORDER BY inbound_event.id`,
    [tenantId, source ?? null],
  );
  return rows.map((r) => ({
    ...r,
    body: JSON.parse(r.body),
    response: r.response === null ? null : (JSON.parse(r.response) as StoredAnswer),
    headers: typeof r.headers === 'string' ? (JSON.parse(r.headers) as Record<string, string>) : r.headers,
  }));
}
