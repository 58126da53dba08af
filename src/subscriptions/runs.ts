import { randomUUID } from 'node:crypto';
import type { Queryable } from '../db/index.ts';
import type { SubscriptionConfig } from './definition.ts';
import type { NotificationType, RegistryStatus } from './store.ts';

/**
 * The SQL of delivery (migrations 003, 021, 027, 028): leasing runs of a subscription's
 * notifications, recording what became of them, renewing leases. A run is the head of line of one
 * subscription and the pending notifications right behind it, leased together under one token on
 * the subscription's lease row, sent one after another and finished in one statement, so a busy
 * subscription costs two statements per run instead of two transactions per notification, and
 * its notifications are written once each, when finished.
 */
export interface ClaimedNotification {
  tenantId: string;
  subscriptionId: string;
  seq: number;
  eventNumber: number | null;
  type: NotificationType;
  resourceType: string | null;
  resourceId: string | null;
  versionId: number | null;
  interaction: string | null;
  occurredAt: Date;
  webhookId: string;
  /** Attempts so far, this one included. */
  attempts: number;
  status: RegistryStatus;
  config: SubscriptionConfig;
  eventsCount: number;
  /** The claim's fencing token, shared by the run: renewals and the finish apply only under it. */
  leaseToken: string;
}

/** One subscription's leased run, in seq order (never empty). */
export type Run = ClaimedNotification[];

/** The advisory lock key of a subscription (of the row `candidate` in claimRuns). */
const SUBSCRIPTION_LOCK = `hashtextextended(tenant_id || '/' || id, 727001)`;


/**
 * The run behind a head of line `head` (tenant_id, id, seq, token): up to $runSize pending
 * notifications from the head on, in seq order, stopping at the first one that is not due or is
 * a handshake (a handshake goes alone: it activates the subscription). Contiguous, so a run never
 * skips a notification it could not take.
 */
const RUN_OF_HEAD = `
  SELECT head.tenant_id, head.id, r.seq, head.token FROM head
   CROSS JOIN LATERAL (
     SELECT q.seq, bool_and(q.ok) OVER (ORDER BY q.seq) AS contiguous FROM (
       SELECT n.seq,
              n.next_attempt_at <= statement_timestamp()
              AND (n.seq = head.seq OR (n.type <> 'handshake' AND head.type <> 'handshake')) AS ok
         FROM subscription_notification n
        WHERE n.tenant_id = head.tenant_id AND n.subscription_id = head.id AND n.status = 'pending' AND n.seq >= head.seq
        ORDER BY n.seq LIMIT $runSize) q) r
   WHERE r.contiguous`;

/**
 * The notifications of the runs whose lease `leased` (tenant_id, id, token) holds, with their
 * registry rows and counters. A run is the first pending rows of its subscription from the head
 * on, so its rows are exactly the pending ones between its first and last seq: one range scan a
 * subscription. (Joined row by row, the plan scanned the run once per row: a run of 100 visited
 * 5,000 rows.)
 */
const RUN_ROWS = `
  SELECT u.tenant_id AS "tenantId", u.subscription_id AS "subscriptionId", u.seq::int AS seq,
         u.event_number::int AS "eventNumber", u.type, u.resource_type AS "resourceType", u.resource_id AS "resourceId",
         u.version_id AS "versionId", u.interaction, u.occurred_at AS "occurredAt", u.webhook_id AS "webhookId",
         u.attempts + 1 AS attempts, s.status, c.events_count::int AS "eventsCount", span.token::text AS "leaseToken",
         -- once a run (asRun shares it): parsed for each of a bundle's 100 rows, it was most of
         -- what the delivery thread allocated
         CASE WHEN u.seq = span.first_seq THEN s.config END AS config
    FROM (SELECT tenant_id, id, token, min(seq) AS first_seq, max(seq) AS last_seq FROM run GROUP BY tenant_id, id, token) span
    JOIN leased l ON l.tenant_id = span.tenant_id AND l.id = span.id AND l.token = span.token
    -- A lateral subquery kept whole (OFFSET 0), so that the range is the index's condition:
    -- joined, or flattened, the plan took the key from another table's row and filtered the
    -- range, reading every pending row of the subscription (test/subscriptions/plans.test.ts).
    CROSS JOIN LATERAL (
      SELECT * FROM subscription_notification n
       WHERE n.tenant_id = span.tenant_id AND n.subscription_id = span.id AND n.seq BETWEEN span.first_seq AND span.last_seq
         AND n.status = 'pending' OFFSET 0) u
    JOIN subscription_registry s ON s.tenant_id = u.tenant_id AND s.id = u.subscription_id
    JOIN subscription_counter c ON c.tenant_id = u.tenant_id AND c.id = u.subscription_id`;

/** `$name` placeholders as `$1`, `$2`, ... in the order of `names` (no name may begin another). */
function numbered(sql: string, names: string[]): string {
  return names.reduce((text, name, i) => text.replaceAll(`$${name}`, `$${i + 1}`), sql);
}

/** Rows of one run in seq order, each with the subscription's config (which only the first row carries). */
function asRun(rows: ClaimedNotification[]): Run {
  const run = rows.sort((a, b) => a.seq - b.seq);
  for (const n of run) n.config = run[0].config;
  return run;
}

function groupRuns(rows: ClaimedNotification[]): Run[] {
  const runs = new Map<string, ClaimedNotification[]>();
  for (const row of rows) {
    const key = `${row.tenantId}/${row.subscriptionId}`;
    const run = runs.get(key);
    if (run) run.push(row);
    else runs.set(key, [row]);
  }
  return [...runs.values()].map(asRun);
}

/**
 * Claims runs of due notifications, at most one run per subscription and `limit` subscriptions:
 * each starts at its subscription's head of line (oldest pending notification), when that is due
 * and its lease is free, so a failing notification holds the ones behind it. A transaction-scoped
 * advisory lock per subscription lets any number of workers claim side by side without two taking
 * the same head; the lease row then keeps the run theirs while in flight (renewed while it sends;
 * see renewLeases), and its UPDATE re-checks that it is free. Cost: one index probe per
 * deliverable subscription, not per pending notification, so a deep backlog does not slow
 * claiming down.
 */
export async function claimRuns(tx: Queryable, limit: number, runSize: number, leaseSeconds: number): Promise<Run[]> {
  const rows = await tx.query<ClaimedNotification>(
    numbered(
      `WITH candidate AS MATERIALIZED (
         SELECT s.tenant_id, s.id, h.seq, h.type, h.occurred_at FROM subscription_registry s
           JOIN subscription_lease l ON l.tenant_id = s.tenant_id AND l.id = s.id
          CROSS JOIN LATERAL (
            -- A requested subscription's head is its handshake, even with events left from before
            -- (a $resend after a dead letter): they follow once the handshake has activated it.
            SELECT n.seq, n.type, n.next_attempt_at, n.occurred_at FROM subscription_notification n
             WHERE n.tenant_id = s.tenant_id AND n.subscription_id = s.id AND n.status = 'pending'
               AND (s.status = 'active' OR n.type = 'handshake')
             ORDER BY n.seq LIMIT 1) h
          WHERE s.status IN ('active', 'requested') AND (l.lease_until IS NULL OR l.lease_until < now())
            AND h.next_attempt_at <= now()),
       -- Longest waiting first, so that with more busy subscriptions than a worker's streams each
       -- gets its turn; the lock is tried in that order, only until enough are taken.
       head AS MATERIALIZED (
         SELECT c.*, gen_random_uuid() AS token FROM (SELECT * FROM candidate ORDER BY occurred_at) c
          WHERE pg_try_advisory_xact_lock(${SUBSCRIPTION_LOCK}) LIMIT $limit),
       run AS MATERIALIZED (${RUN_OF_HEAD}),
       leased AS (
         UPDATE subscription_lease l SET token = head.token, lease_until = now() + make_interval(secs => $leaseSeconds)
           FROM head
          WHERE l.tenant_id = head.tenant_id AND l.id = head.id AND (l.lease_until IS NULL OR l.lease_until < statement_timestamp())
            AND EXISTS (SELECT 1 FROM run WHERE run.tenant_id = head.tenant_id AND run.id = head.id)
          RETURNING l.tenant_id, l.id, l.token)
       ${RUN_ROWS}`,
      ['limit', 'runSize', 'leaseSeconds'],
    ),
    [limit, runSize, leaseSeconds],
    { prepare: true }, // planning it took longer than running it (2 ms against 1)
  );
  return groupRuns(rows);
}

export interface AttemptResult {
  httpStatus?: number;
  latencyMs: number;
  error?: string;
}

/** What becomes of a notification after an attempt. */
export type AttemptOutcome =
  | { next: 'delivered' }
  | { next: 'retry'; delayMs: number; error: string }
  | { next: 'dead'; error: string };

/**
 * A request of the run that was sent, the notifications it carried (one, or a Backport bundle's
 * consecutive events, in seq order), and what became of them.
 */
export interface Attempted {
  seqs: number[];
  result: AttemptResult;
  outcome: AttemptOutcome;
}

/** What finishRun did: nothing when the lease was no longer ours (`fenced`); else the next run, if one was due. */
export type FinishResult = { fenced: true } | { fenced: false; next: Run | undefined };

/**
 * Records a run's attempts in one statement, under the run's lease token: an attempt row for each
 * request sent, each notification's new state (delivered; or, for the last, retry or dead), the
 * notifications not sent (behind a failure, or left when the worker stopped) released as they
 * were, the subscription's last_sent_at once something was delivered (for heartbeats) and its
 * registry status once dead (error, so no worker claims the next notification before the
 * Subscription resource is moved). When the whole run was delivered, the same statement leases
 * the subscription's next run, so a busy queue goes on with no claim in between, one round trip a
 * run (on a pool whose single statements do not wait for the WAL flush). No NOTIFY here: a
 * notifying transaction's commit queues behind every other notifying commit's WAL flush (the
 * writers'), which made this finish wait several milliseconds; whoever must be woken is woken
 * after it commits (the worker: wakeWorkers). A worker whose lease ran out and was taken over
 * changes nothing (the new owner sends and records the notifications).
 * `runSize` 0: lease nothing more (the worker is stopping, or yields the stream to others).
 */
export async function finishRun(conn: Queryable, run: Run, attempted: Attempted[], runSize: number, leaseSeconds: number): Promise<FinishResult> {
  const { tenantId, subscriptionId, leaseToken } = run[0];
  const last = attempted.at(-1)?.outcome;
  const each = attempted.flatMap((a) => a.seqs.map((seq) => ({ seq, outcome: a.outcome })));
  const goesOn = runSize > 0 && each.length === run.length && attempted.every((a) => a.outcome.next === 'delivered');
  const rows = await conn.query<ClaimedNotification & { mine: number }>(
    numbered(
      `WITH outcome AS (
         SELECT * FROM unnest($attemptedSeqs::bigint[], $statuses::text[], $lastErrors::text[], $delays::float8[])
           AS o(seq, status, last_error, delay_s)),
       -- The next run, behind this one's last seq (its rows are still pending in this statement's
       -- snapshot), leased below if this run still holds the stream: nobody else can claim its
       -- head before this commits.
       head AS MATERIALIZED (
         SELECT s.tenant_id, s.id, h.seq, h.type, $nextToken::uuid AS token FROM subscription_registry s
          CROSS JOIN LATERAL (
            SELECT n.seq, n.type FROM subscription_notification n
             WHERE n.tenant_id = s.tenant_id AND n.subscription_id = s.id AND n.status = 'pending' AND n.seq > $lastSeq
             ORDER BY n.seq LIMIT 1) h
          WHERE $goesOn AND s.tenant_id = $tenantId AND s.id = $subscriptionId AND s.status = 'active'),
       run AS MATERIALIZED (${RUN_OF_HEAD}),
       -- The fence: the stream's lease, while this run still holds it, handed on to the next run or let go.
       leased AS (
         UPDATE subscription_lease l
            SET token = next.token, lease_until = CASE WHEN next.token IS NOT NULL THEN now() + make_interval(secs => $leaseSeconds) END
           FROM (SELECT (SELECT token FROM run LIMIT 1) AS token) next
          WHERE l.tenant_id = $tenantId AND l.id = $subscriptionId AND l.token = $leaseToken::uuid
         RETURNING l.tenant_id, l.id, l.token),
       mine AS (
         UPDATE subscription_notification n
            SET status = coalesce(o.status, 'pending'),
                last_error = CASE WHEN o.seq IS NULL THEN n.last_error ELSE o.last_error END,
                delivered_at = CASE WHEN o.status = 'delivered' THEN now() END,
                next_attempt_at = CASE WHEN o.seq IS NULL THEN n.next_attempt_at ELSE now() + make_interval(secs => o.delay_s) END,
                attempts = CASE WHEN o.seq IS NULL THEN n.attempts ELSE n.attempts + 1 END
           FROM unnest($seqs::bigint[]) AS r(seq) LEFT JOIN outcome o ON o.seq = r.seq
          -- The range makes the key's index find the run's rows whatever the statistics say: a
          -- join on r.seq alone, or seq = ANY, was run as a filter over every notification the
          -- subscription ever had (5 ms after 3,600 of them, growing with each).
          WHERE n.tenant_id = $tenantId AND n.subscription_id = $subscriptionId AND n.seq BETWEEN $firstSeq AND $lastSeq
            AND n.seq = r.seq AND EXISTS (SELECT 1 FROM leased)
          RETURNING n.seq),
       attempt AS (
         INSERT INTO delivery_attempt (tenant_id, subscription_id, seq, last_seq, http_status, latency_ms, error)
         SELECT $tenantId, $subscriptionId, q.seq, q.last_seq, q.http_status, q.latency_ms, q.error
           FROM unnest($requestSeqs::bigint[], $requestLastSeqs::bigint[], $httpStatuses::int[], $latencies::int[], $errors::text[])
                AS q(seq, last_seq, http_status, latency_ms, error)
          WHERE q.seq IN (SELECT seq FROM mine)),
       -- Only heartbeats need last_sent_at; other subscriptions' rows stay unlocked for writers.
       sent AS (
         UPDATE subscription_registry SET last_sent_at = now()
          WHERE tenant_id = $tenantId AND id = $subscriptionId AND config ? 'heartbeatSeconds'
            AND EXISTS (SELECT 1 FROM outcome WHERE status = 'delivered') AND EXISTS (SELECT 1 FROM mine)),
       stopped AS (
         UPDATE subscription_registry SET status = 'error'
          WHERE $dead AND tenant_id = $tenantId AND id = $subscriptionId AND EXISTS (SELECT 1 FROM mine))
       SELECT (SELECT count(*) FROM mine)::int AS mine, next.* FROM (VALUES (1)) AS one LEFT JOIN (${RUN_ROWS}) next ON true`,
      ['tenantId', 'subscriptionId', 'seqs', 'attemptedSeqs', 'statuses', 'lastErrors', 'delays', 'requestSeqs', 'requestLastSeqs', 'httpStatuses', 'latencies', 'errors', 'leaseToken', 'dead', 'goesOn', 'lastSeq', 'runSize', 'leaseSeconds', 'firstSeq', 'nextToken'],
    ),
    [
      tenantId,
      subscriptionId,
      run.map((n) => n.seq),
      each.map((a) => a.seq),
      each.map((a) => (a.outcome.next === 'retry' ? 'pending' : a.outcome.next)),
      each.map((a) => (a.outcome.next === 'delivered' ? null : a.outcome.error)),
      each.map((a) => (a.outcome.next === 'retry' ? a.outcome.delayMs / 1000 : 0)),
      attempted.map((a) => a.seqs[0]),
      attempted.map((a) => (a.seqs.length > 1 ? a.seqs.at(-1)! : null)),
      attempted.map((a) => a.result.httpStatus ?? null),
      attempted.map((a) => Math.round(a.result.latencyMs)),
      attempted.map((a) => a.result.error ?? null),
      leaseToken,
      last?.next === 'dead',
      goesOn,
      run.at(-1)!.seq,
      runSize,
      leaseSeconds,
      run[0].seq,
      randomUUID(),
    ],
    { prepare: true }, // planning it took longer than running it (1.5-3 ms against 0.6)
  );
  if (rows[0].mine === 0) return { fenced: true };
  const next = asRun(rows.filter((r) => r.seq !== null).map(({ mine: _mine, ...n }) => n as ClaimedNotification));
  return { fenced: false, next: next.length > 0 ? next : undefined };
}

export interface HeldLease {
  tenantId: string;
  subscriptionId: string;
  leaseToken: string;
}

/** Extends the leases still held under their tokens; returns the tokens renewed (the others are lost). */
export async function renewLeases(conn: Queryable, leases: readonly HeldLease[], leaseSeconds: number): Promise<Set<string>> {
  if (leases.length === 0) return new Set();
  const rows = await conn.query<{ token: string }>(
    `UPDATE subscription_lease l SET lease_until = now() + make_interval(secs => $4)
       FROM unnest($1::text[], $2::text[], $3::uuid[]) AS h(tenant_id, id, token)
      WHERE l.tenant_id = h.tenant_id AND l.id = h.id AND l.token = h.token
      RETURNING l.token::text AS token`,
    [leases.map((l) => l.tenantId), leases.map((l) => l.subscriptionId), leases.map((l) => l.leaseToken), leaseSeconds],
  );
  return new Set(rows.map((r) => r.token));
}
