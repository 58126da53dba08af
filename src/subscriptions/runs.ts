import type { Queryable } from '../db/index.ts';
import type { SubscriptionConfig } from './definition.ts';
import { NOTIFY_CHANNEL } from './store.ts';
import type { NotificationType, RegistryStatus } from './store.ts';

/**
 * The SQL of delivery (migrations 003, 007): leasing runs of a subscription's notifications,
 * recording what became of them, renewing leases. A run is the head of line of one subscription
 * and the pending notifications right behind it, leased together under one token, sent one after
 * another and finished in one statement, so a busy subscription costs two statements per run
 * instead of two transactions per notification.
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

/** What a claim returns: the notification (u) with its subscription's registry row (s). */
const CLAIMED_COLUMNS = `u.tenant_id AS "tenantId", u.subscription_id AS "subscriptionId", u.seq::int AS seq,
  u.event_number::int AS "eventNumber", u.type, u.resource_type AS "resourceType", u.resource_id AS "resourceId",
  u.version_id AS "versionId", u.interaction, u.occurred_at AS "occurredAt", u.webhook_id AS "webhookId",
  u.attempts, s.status, s.config, s.events_count::int AS "eventsCount", u.lease_token::text AS "leaseToken"`;

/**
 * The run behind a head of line `head` (tenant_id, id, seq, token): up to $runSize pending
 * notifications from the head on, in seq order, stopping at the first one that is not due, is
 * leased, or is a handshake (a handshake goes alone: it activates the subscription). Contiguous,
 * so a run never skips a notification it could not take.
 */
const RUN_OF_HEAD = `
  SELECT head.tenant_id, head.id, r.seq, head.token FROM head
   CROSS JOIN LATERAL (
     SELECT q.seq, bool_and(q.ok) OVER (ORDER BY q.seq) AS contiguous FROM (
       SELECT n.seq,
              n.next_attempt_at <= statement_timestamp() AND (n.lease_until IS NULL OR n.lease_until < statement_timestamp())
              AND (n.seq = head.seq OR (n.type <> 'handshake' AND head.type <> 'handshake')) AS ok
         FROM subscription_notification n
        WHERE n.tenant_id = head.tenant_id AND n.subscription_id = head.id AND n.status = 'pending' AND n.seq >= head.seq
        ORDER BY n.seq LIMIT $runSize) q) r
   WHERE r.contiguous`;

/** Leases the rows of `run` (a CTE of tenant_id, id, seq, token) and returns them with their registry rows. */
const LEASE_RUN = `
  UPDATE subscription_notification u
     SET lease_until = now() + make_interval(secs => $leaseSeconds), lease_token = run.token, attempts = u.attempts + 1
    FROM run, subscription_registry s
   WHERE u.tenant_id = run.tenant_id AND u.subscription_id = run.id AND u.seq = run.seq
     AND u.status = 'pending' AND (u.lease_until IS NULL OR u.lease_until < statement_timestamp())
     AND s.tenant_id = u.tenant_id AND s.id = u.subscription_id
  RETURNING ${CLAIMED_COLUMNS}`;

function numbered(sql: string, names: string[]): string {
  return names.reduce((text, name, i) => text.replaceAll(`$${name}`, `$${i + 1}`), sql);
}

function groupRuns(rows: ClaimedNotification[]): Run[] {
  const runs = new Map<string, Run>();
  for (const row of rows) {
    const key = `${row.tenantId}/${row.subscriptionId}`;
    const run = runs.get(key);
    if (run) run.push(row);
    else runs.set(key, [row]);
  }
  return [...runs.values()].map((run) => run.sort((a, b) => a.seq - b.seq));
}

/**
 * Claims runs of due notifications, at most one run per subscription and `limit` subscriptions:
 * each starts at its subscription's head of line (oldest pending notification), when that is due
 * and not in flight, so a failing notification holds the ones behind it. A transaction-scoped
 * advisory lock per subscription lets any number of workers claim side by side without two taking
 * the same head (writers, who lock the registry row to number events, are not waited for); the
 * lease then keeps the run theirs while in flight (renewed while it sends; see renewLeases), and
 * the UPDATE re-checks it. Cost: one index probe per deliverable subscription, not per pending
 * notification, so a deep backlog does not slow claiming down.
 */
export async function claimRuns(tx: Queryable, limit: number, runSize: number, leaseSeconds: number): Promise<Run[]> {
  const rows = await tx.query<ClaimedNotification>(
    numbered(
      `WITH candidate AS MATERIALIZED (
         SELECT s.tenant_id, s.id, h.seq, h.type, h.occurred_at FROM subscription_registry s
          CROSS JOIN LATERAL (
            -- A requested subscription's head is its handshake, even with events left from before
            -- (a $resend after a dead letter): they follow once the handshake has activated it.
            SELECT n.seq, n.type, n.next_attempt_at, n.lease_until, n.occurred_at FROM subscription_notification n
             WHERE n.tenant_id = s.tenant_id AND n.subscription_id = s.id AND n.status = 'pending'
               AND (s.status = 'active' OR n.type = 'handshake')
             ORDER BY n.seq LIMIT 1) h
          WHERE s.status IN ('active', 'requested')
            AND h.next_attempt_at <= now() AND (h.lease_until IS NULL OR h.lease_until < now())),
       -- Longest waiting first, so that with more busy subscriptions than a worker's streams each
       -- gets its turn; the lock is tried in that order, only until enough are taken.
       head AS MATERIALIZED (
         SELECT c.*, gen_random_uuid() AS token FROM (SELECT * FROM candidate ORDER BY occurred_at) c
          WHERE pg_try_advisory_xact_lock(${SUBSCRIPTION_LOCK}) LIMIT $limit),
       run AS MATERIALIZED (${RUN_OF_HEAD})
       ${LEASE_RUN}`,
      ['limit', 'runSize', 'leaseSeconds'],
    ),
    [limit, runSize, leaseSeconds],
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

/** A notification of the run that was attempted, and what became of it. */
export interface Attempted {
  seq: number;
  result: AttemptResult;
  outcome: AttemptOutcome;
}

/** What finishRun did: nothing when the lease was no longer ours (`fenced`); else the next run, if one was due. */
export type FinishResult = { fenced: true } | { fenced: false; next: Run | undefined };

/**
 * Records a run's attempts in one statement, under the run's lease token: an attempt row for each
 * notification sent, each one's new state (delivered; or, for the last, retry or dead), the
 * notifications not sent (behind a failure, or left when the worker stopped) released as they
 * were, the subscription's last_sent_at once something was delivered (for heartbeats) and its
 * registry status once dead (error, so no worker claims the next notification before the
 * Subscription resource is moved). When the whole run was delivered, a second statement leases
 * the subscription's next run, so a busy queue goes on with no claim in between; otherwise it
 * wakes the workers (NOTIFY), since a notification may now be claimable. A worker whose lease ran
 * out and was taken over changes nothing (the new owner sends and records the notifications).
 * `runSize` 0: lease nothing more (the worker is stopping, or yields the stream to others).
 */
export async function finishRun(tx: Queryable, run: Run, attempted: Attempted[], runSize: number, leaseSeconds: number): Promise<FinishResult> {
  const { tenantId, subscriptionId, leaseToken } = run[0];
  const last = attempted.at(-1)?.outcome;
  const allDelivered = attempted.length === run.length && attempted.every((a) => a.outcome.next === 'delivered');
  const rows = await tx.query<{ mine: number }>(
    `WITH outcome AS (
       SELECT * FROM unnest($4::bigint[], $5::text[], $6::text[], $7::float8[], $8::int[], $9::int[], $10::text[])
         AS o(seq, status, last_error, delay_s, http_status, latency_ms, error)),
     mine AS (
       UPDATE subscription_notification n
          SET status = coalesce(o.status, 'pending'), lease_until = NULL, lease_token = NULL,
              last_error = CASE WHEN o.seq IS NULL THEN n.last_error ELSE o.last_error END,
              delivered_at = CASE WHEN o.status = 'delivered' THEN now() END,
              next_attempt_at = CASE WHEN o.seq IS NULL THEN n.next_attempt_at ELSE now() + make_interval(secs => o.delay_s) END,
              -- not sent: the attempt its claim counted did not happen
              attempts = CASE WHEN o.seq IS NULL THEN n.attempts - 1 ELSE n.attempts END
         FROM unnest($3::bigint[]) AS r(seq) LEFT JOIN outcome o ON o.seq = r.seq
        WHERE n.tenant_id = $1 AND n.subscription_id = $2 AND n.seq = r.seq AND n.lease_token = $11::uuid
        RETURNING n.seq),
     attempt AS (
       INSERT INTO delivery_attempt (tenant_id, subscription_id, seq, http_status, latency_ms, error)
       SELECT $1, $2, o.seq, o.http_status, o.latency_ms, o.error FROM outcome o WHERE o.seq IN (SELECT seq FROM mine)),
     -- Only heartbeats need last_sent_at; other subscriptions' rows stay unlocked for writers.
     sent AS (
       UPDATE subscription_registry SET last_sent_at = now()
        WHERE tenant_id = $1 AND id = $2 AND config ? 'heartbeatSeconds'
          AND EXISTS (SELECT 1 FROM outcome WHERE status = 'delivered') AND EXISTS (SELECT 1 FROM mine)),
     stopped AS (
       UPDATE subscription_registry SET status = 'error'
        WHERE $12 AND tenant_id = $1 AND id = $2 AND EXISTS (SELECT 1 FROM mine))
     SELECT count(*)::int AS mine FROM mine`,
    [
      tenantId,
      subscriptionId,
      run.map((n) => n.seq),
      attempted.map((a) => a.seq),
      attempted.map((a) => (a.outcome.next === 'retry' ? 'pending' : a.outcome.next)),
      attempted.map((a) => (a.outcome.next === 'delivered' ? null : a.outcome.error)),
      attempted.map((a) => (a.outcome.next === 'retry' ? a.outcome.delayMs / 1000 : 0)),
      attempted.map((a) => a.result.httpStatus ?? null),
      attempted.map((a) => Math.round(a.result.latencyMs)),
      attempted.map((a) => a.result.error ?? null),
      leaseToken,
      last?.next === 'dead',
    ],
  );
  if (rows[0].mine === 0) return { fenced: true };
  if (!allDelivered || runSize === 0) {
    await tx.query(`SELECT pg_notify('${NOTIFY_CHANNEL}', '')`);
    return { fenced: false, next: undefined };
  }
  const next = await leaseNextRun(tx, tenantId, subscriptionId, run.at(-1)!.seq, runSize, leaseSeconds);
  if (next.length === 0) await tx.query(`SELECT pg_notify('${NOTIFY_CHANNEL}', '')`);
  return { fenced: false, next: next.length > 0 ? next : undefined };
}

/** The run after `afterSeq` of an active subscription, leased, if its head is due and free. */
async function leaseNextRun(tx: Queryable, tenantId: string, subscriptionId: string, afterSeq: number, runSize: number, leaseSeconds: number): Promise<ClaimedNotification[]> {
  const rows = await tx.query<ClaimedNotification>(
    numbered(
      `WITH head AS MATERIALIZED (
         SELECT s.tenant_id, s.id, h.seq, h.type, gen_random_uuid() AS token FROM subscription_registry s
          CROSS JOIN LATERAL (
            SELECT n.seq, n.type FROM subscription_notification n
             WHERE n.tenant_id = s.tenant_id AND n.subscription_id = s.id AND n.status = 'pending' AND n.seq > $afterSeq
             ORDER BY n.seq LIMIT 1) h
          WHERE s.tenant_id = $tenantId AND s.id = $subscriptionId AND s.status = 'active'),
       run AS MATERIALIZED (${RUN_OF_HEAD})
       ${LEASE_RUN}`,
      ['tenantId', 'subscriptionId', 'afterSeq', 'runSize', 'leaseSeconds'],
    ),
    [tenantId, subscriptionId, afterSeq, runSize, leaseSeconds],
  );
  return rows.sort((a, b) => a.seq - b.seq);
}

export interface HeldLease {
  tenantId: string;
  subscriptionId: string;
  /** The run's first and last seq. */
  firstSeq: number;
  lastSeq: number;
  leaseToken: string;
}

/** Extends the leases still held under their tokens; returns the tokens renewed (the others are lost). */
export async function renewLeases(conn: Queryable, leases: readonly HeldLease[], leaseSeconds: number): Promise<Set<string>> {
  if (leases.length === 0) return new Set();
  const rows = await conn.query<{ token: string }>(
    `UPDATE subscription_notification n SET lease_until = now() + make_interval(secs => $6)
       FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::uuid[]) AS l(tenant_id, subscription_id, first_seq, last_seq, token)
      WHERE n.tenant_id = l.tenant_id AND n.subscription_id = l.subscription_id AND n.seq BETWEEN l.first_seq AND l.last_seq
        AND n.lease_token = l.token AND n.status = 'pending'
      RETURNING n.lease_token::text AS token`,
    [
      leases.map((l) => l.tenantId),
      leases.map((l) => l.subscriptionId),
      leases.map((l) => l.firstSeq),
      leases.map((l) => l.lastSeq),
      leases.map((l) => l.leaseToken),
      leaseSeconds,
    ],
  );
  return new Set(rows.map((r) => r.token));
}
