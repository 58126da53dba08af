import type { Queryable } from '../db/index.ts';
import { MAX_EVENTS_PER_NOTIFICATION } from '../subscriptions/index.ts';

/**
 * Read models for operators (the console and the CLI): the inbound journal, deliveries, money and
 * an overview, read across the tables of inbound/, subscriptions/ and billing/. Reads only, except
 * `replayFrom`. Every statement filters on the tenant; lists page by keyset (an id below `before`),
 * so a long journal costs one index range per page.
 */

export interface Page<T> {
  items: T[];
  /** Pass as `before` for the next (older) page; absent on the last page. */
  next?: string;
}

const page = <T extends { id: string }>(rows: T[], limit: number): Page<T> =>
  rows.length > limit ? { items: rows.slice(0, limit), next: rows[limit - 1].id } : { items: rows };

export interface EventFilter {
  tenantId: string;
  source?: string;
  sourceId?: string;
  status?: string;
  since?: string;
  until?: string;
  before?: string;
  limit: number;
}

export interface EventSummary {
  id: string;
  source: string;
  sourceId: string | null;
  eventType: string;
  dedupeKey: string;
  status: string;
  answerStatus: number | null;
  error: string | null;
  receivedAt: string;
}

export async function listInboundEvents(conn: Queryable, f: EventFilter): Promise<Page<EventSummary>> {
  const rows = await conn.query<EventSummary>(
    `SELECT id::text, source, source_id AS "sourceId", event_type AS "eventType", dedupe_key AS "dedupeKey", status,
            (response::jsonb->>'status')::int AS "answerStatus", error, to_json(received_at)#>>'{}' AS "receivedAt"
       FROM inbound_event
      WHERE tenant_id = $1 AND ($2::text IS NULL OR source = $2) AND ($3::text IS NULL OR source_id = $3)
        AND ($4::text IS NULL OR status = $4) AND ($5::timestamptz IS NULL OR received_at >= $5)
        AND ($6::timestamptz IS NULL OR received_at < $6) AND ($7::bigint IS NULL OR inbound_event.id < $7)
      ORDER BY inbound_event.id DESC LIMIT $8`,
    [f.tenantId, f.source ?? null, f.sourceId ?? null, f.status ?? null, f.since ?? null, f.until ?? null, f.before ?? null, f.limit + 1],
  );
  return page(rows, f.limit);
}

export interface EventDetail extends EventSummary {
  contentType: string | null;
  rawBody: string | null;
  body: unknown;
  headers: Record<string, string> | null;
  answer: { status: number; body: unknown } | null;
  duplicateOf: string | null;
  /**
   * FHIR resources the event's transaction wrote (`Type/id`), as the journal recorded them; for
   * events journalled before it recorded them, those its answer and its payment name.
   */
  resources: string[];
  /**
   * How many resources it wrote: `resources.length`, except where the journal caps the list (an
   * 835 file: the first 1,000, with the count of the writes after them; inbound/x12-835/journal.ts).
   */
  resourcesTotal: number;
  /** Whether `rawBody` is only the start of what came (an 835 file keeps its first 256 KiB). */
  rawTruncated: boolean;
  /** The size of what came, in bytes, where the journal recorded it (an 835 file). */
  rawBytes: number | null;
}

const ANSWER_IDS: Record<string, string> = {
  claimId: 'Claim',
  paymentReconciliationId: 'PaymentReconciliation',
  patientCreditId: 'PatientCredit',
  claimResponseId: 'ClaimResponse',
};

export async function getInboundEvent(conn: Queryable, tenantId: string, id: string): Promise<EventDetail | undefined> {
  const rows = await conn.query<Omit<EventDetail, 'resources' | 'answer' | 'body' | 'headers'> & { response: string | null; body: string; headers: unknown; resources: unknown }>(
    `SELECT id::text, source, source_id AS "sourceId", event_type AS "eventType", dedupe_key AS "dedupeKey", status,
            (response::jsonb->>'status')::int AS "answerStatus", error, to_json(received_at)#>>'{}' AS "receivedAt",
            content_type AS "contentType", raw_body AS "rawBody", body, headers, response, duplicate_of::text AS "duplicateOf", resources
       FROM inbound_event WHERE tenant_id = $1 AND inbound_event.id = $2`,
    [tenantId, id],
  );
  const r = rows[0];
  if (!r) return undefined;
  const { response, resources: recorded, ...rest } = r;
  const answer = response === null ? null : (JSON.parse(response) as { status: number; body: unknown });
  const written = typeof recorded === 'string' ? (JSON.parse(recorded) as string[]) : (recorded as string[] | null);
  const body = JSON.parse(r.body) as unknown;
  // Only the 835's body is ours (a summary); other senders' bodies are what they sent.
  const capped = r.source === 'x12-835' ? capsOf(body) : { truncated: false, bytes: null };
  const base = {
    ...rest,
    body,
    headers: typeof r.headers === 'string' ? (JSON.parse(r.headers) as Record<string, string>) : (r.headers as Record<string, string> | null),
    answer,
    rawTruncated: capped.truncated,
    rawBytes: capped.bytes,
  };
  if (written) return { ...base, resources: written, resourcesTotal: Math.max(written.length, capped.resourcesTotal ?? 0) };
  const payments = await conn.query<{ pr: string; credit: string | null; claim: string }>(
    `SELECT payment_reconciliation_id AS pr, patient_credit_id AS credit, claim_id AS claim FROM patient_payment
      WHERE tenant_id = $1 AND payment_key = $2 AND $3 = 'processed'`,
    [tenantId, r.dedupeKey, r.status],
  );
  const inferred = [...new Set([...idsIn(answer?.body), ...payments.flatMap((p) => [`PaymentReconciliation/${p.pr}`, `Claim/${p.claim}`, ...(p.credit ? [`PatientCredit/${p.credit}`] : [])])])];
  return { ...base, resources: inferred, resourcesTotal: inferred.length };
}

/** What a journal summary body says of its caps (inbound/x12-835/journal.ts writes `file` and `resources`). */
function capsOf(body: unknown): { truncated: boolean; bytes: number | null; resourcesTotal?: number } {
  const b = (body ?? {}) as { file?: { truncated?: unknown; bytes?: unknown }; resources?: { total?: unknown } };
  return {
    truncated: b.file?.truncated === true,
    bytes: typeof b.file?.bytes === 'number' ? b.file.bytes : null,
    ...(typeof b.resources?.total === 'number' && { resourcesTotal: b.resources.total }),
  };
}

/** `Type/id` for every known id key anywhere in an answer body. */
function idsIn(value: unknown, out: string[] = []): string[] {
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (typeof v === 'string' && ANSWER_IDS[k] && /^[A-Za-z0-9\-.]{1,64}$/.test(v)) out.push(`${ANSWER_IDS[k]}/${v}`);
      else idsIn(v, out);
    }
  }
  return out;
}

export interface SubscriptionSummary {
  id: string;
  status: string;
  resourceType: string;
  endpoint: string | null;
  eventsCount: number;
  pending: number;
  dead: number;
  lastSentAt: string | null;
  lastError: string | null;
  /** Subscription.error: why the server put it in `error` (an endpoint that never resolved, say). */
  statusError: string | null;
}

export async function listSubscriptions(conn: Queryable, tenantId: string): Promise<SubscriptionSummary[]> {
  return conn.query<SubscriptionSummary>(
    `SELECT s.id, s.status, s.resource_type AS "resourceType", s.config->>'endpoint' AS endpoint,
            (SELECT c.events_count::int FROM subscription_counter c WHERE c.tenant_id = s.tenant_id AND c.id = s.id) AS "eventsCount",
            (SELECT count(*)::int FROM subscription_notification n WHERE n.tenant_id = s.tenant_id AND n.subscription_id = s.id AND n.status = 'pending') AS pending,
            (SELECT count(*)::int FROM subscription_notification n WHERE n.tenant_id = s.tenant_id AND n.subscription_id = s.id AND n.status = 'dead') AS dead,
            to_json(s.last_sent_at)#>>'{}' AS "lastSentAt",
            (SELECT a.error FROM delivery_attempt a WHERE a.tenant_id = s.tenant_id AND a.subscription_id = s.id ORDER BY a.id DESC LIMIT 1) AS "lastError",
            (SELECT r.content::jsonb->>'error' FROM resource r WHERE r.tenant_id = s.tenant_id AND r.resource_type = 'Subscription' AND r.id = s.id) AS "statusError"
       FROM subscription_registry s WHERE s.tenant_id = $1 ORDER BY s.id`,
    [tenantId],
  );
}

export interface Attempt {
  attemptedAt: string;
  httpStatus: number | null;
  latencyMs: number;
  error: string | null;
}

export interface NotificationRow {
  id: string;
  eventNumber: number | null;
  type: string;
  focus: string | null;
  status: string;
  attempts: Attempt[];
  occurredAt: string;
  nextAttemptAt: string | null;
  lastError: string | null;
}

export async function listNotifications(
  conn: Queryable,
  q: { tenantId: string; subscriptionId: string; status?: string; before?: string; limit: number },
): Promise<Page<NotificationRow>> {
  const rows = await conn.query<NotificationRow>(
    `SELECT n.seq::text AS id, n.event_number::int AS "eventNumber", n.type,
            CASE WHEN n.resource_type IS NULL THEN NULL ELSE n.resource_type || '/' || n.resource_id || '/_history/' || n.version_id END AS focus,
            n.status, to_json(n.occurred_at)#>>'{}' AS "occurredAt",
            CASE WHEN n.status = 'pending' THEN to_json(n.next_attempt_at)#>>'{}' END AS "nextAttemptAt", n.last_error AS "lastError",
            coalesce((SELECT json_agg(json_build_object('attemptedAt', a.attempted_at, 'httpStatus', a.http_status, 'latencyMs', a.latency_ms, 'error', a.error) ORDER BY a.id)
                        FROM delivery_attempt a
                       -- n's own requests, and the bundles it went in (at most a bundle's limit before it)
                       WHERE a.tenant_id = n.tenant_id AND a.subscription_id = n.subscription_id
                         AND a.seq BETWEEN n.seq - $6 AND n.seq AND coalesce(a.last_seq, a.seq) >= n.seq), '[]'::json) AS attempts
       FROM subscription_notification n
      WHERE n.tenant_id = $1 AND n.subscription_id = $2 AND ($3::text IS NULL OR n.status = $3) AND ($4::bigint IS NULL OR n.seq < $4)
      ORDER BY n.seq DESC LIMIT $5`,
    [q.tenantId, q.subscriptionId, q.status ?? null, q.before ?? null, q.limit + 1, MAX_EVENTS_PER_NOTIFICATION - 1],
  );
  return page(rows.map((r) => ({ ...r, attempts: typeof r.attempts === 'string' ? JSON.parse(r.attempts) : r.attempts })), q.limit);
}

export interface HealthBucket {
  hour: string;
  attempts: number;
  succeeded: number;
  /** Median latency of the hour's attempts, in ms. */
  medianLatencyMs: number | null;
}

/** Every hour of the last `hours` (oldest first, empty ones too): attempts, 2xx answers, median latency. */
export async function deliveryHealth(conn: Queryable, tenantId: string, subscriptionId: string, hours: number): Promise<HealthBucket[]> {
  return conn.query<HealthBucket>(
    `WITH h AS (SELECT generate_series(date_trunc('hour', now()) - make_interval(hours => $3 - 1), date_trunc('hour', now()), interval '1 hour') AS hour),
          a AS (SELECT date_trunc('hour', attempted_at) AS hour, count(*)::int AS attempts,
                       count(*) FILTER (WHERE http_status BETWEEN 200 AND 299)::int AS succeeded,
                       (percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms))::int AS median
                  FROM delivery_attempt
                 WHERE tenant_id = $1 AND subscription_id = $2 AND attempted_at >= date_trunc('hour', now()) - make_interval(hours => $3 - 1)
                 GROUP BY 1)
     SELECT to_json(h.hour)#>>'{}' AS hour, coalesce(a.attempts, 0) AS attempts, coalesce(a.succeeded, 0) AS succeeded, a.median AS "medianLatencyMs"
       FROM h LEFT JOIN a ON a.hour = h.hour ORDER BY h.hour`,
    [tenantId, subscriptionId, hours],
  );
}

/**
 * Sends again every event-notification from `fromEventNumber` on, in order (delivered and dead
 * ones go back to pending; a receiver deduplicates on the unchanged webhook-id). Pending ones stay.
 */
export async function replayFrom(tx: Queryable, tenantId: string, subscriptionId: string, fromEventNumber: number): Promise<number> {
  const rows = await tx.query<{ n: number }>(
    `WITH requeued AS (
       UPDATE subscription_notification SET status = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL, delivered_at = NULL
        WHERE tenant_id = $1 AND subscription_id = $2 AND type = 'event-notification' AND event_number >= $3 AND status <> 'pending' RETURNING 1)
     SELECT count(*)::int AS n FROM requeued`,
    [tenantId, subscriptionId, fromEventNumber],
  );
  await tx.query(`SELECT pg_notify('fhir_billing_notifications', '')`);
  return rows[0].n;
}

export async function subscriptionExists(conn: Queryable, tenantId: string, id: string): Promise<boolean> {
  const rows = await conn.query(`SELECT 1 FROM subscription_registry WHERE tenant_id = $1 AND id = $2`, [tenantId, id]);
  return rows.length > 0;
}
