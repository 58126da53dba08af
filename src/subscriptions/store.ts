import { randomUUID } from 'node:crypto';
import type { Queryable } from '../db/index.ts';
import type { SubscriptionConfig } from './definition.ts';

/** The SQL of Subscriptions (migrations/003): registry, notification queue, delivery attempts. */
export const NOTIFY_CHANNEL = 'fhir_billing_notifications';

export type RegistryStatus = 'requested' | 'active' | 'error' | 'off';
export type NotificationType = 'handshake' | 'heartbeat' | 'event-notification';

export interface RegistryRow {
  tenantId: string;
  id: string;
  status: RegistryStatus;
  config: SubscriptionConfig;
  eventsCount: number;
}

const REGISTRY_COLUMNS = `tenant_id AS "tenantId", id, status, config, events_count::int AS "eventsCount"`;

export async function upsertRegistry(tx: Queryable, tenantId: string, id: string, status: RegistryStatus, config: SubscriptionConfig): Promise<void> {
  await tx.query(
    `INSERT INTO subscription_registry (tenant_id, id, status, resource_type, config) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (tenant_id, id) DO UPDATE SET status = EXCLUDED.status, resource_type = EXCLUDED.resource_type, config = EXCLUDED.config`,
    [tenantId, id, status, config.resourceType, JSON.stringify(config)],
  );
}

export async function deleteRegistry(tx: Queryable, tenantId: string, id: string): Promise<void> {
  await tx.query('DELETE FROM subscription_notification WHERE tenant_id = $1 AND subscription_id = $2', [tenantId, id]);
  await tx.query('DELETE FROM subscription_registry WHERE tenant_id = $1 AND id = $2', [tenantId, id]);
}

/**
 * The subscriptions of a tenant that collect events of a type: the one lookup every write makes.
 * Active ones, and those in error: a dead letter stops a subscription's sending, not its
 * collecting, so what happens while it is in error waits behind the dead letter and goes out, in
 * order, once $resend or the client brings it back. Nothing is lost to an outage of the receiver.
 */
export async function subscriptionsCollectingFor(conn: Queryable, tenantId: string, resourceType: string): Promise<RegistryRow[]> {
  return conn.query<RegistryRow>(
    `SELECT ${REGISTRY_COLUMNS} FROM subscription_registry WHERE tenant_id = $1 AND resource_type = $2 AND status IN ('active', 'error')`,
    [tenantId, resourceType],
    { prepare: true }, // asked on every write
  );
}

export async function getRegistry(conn: Queryable, tenantId: string, id: string): Promise<RegistryRow | undefined> {
  const rows = await conn.query<RegistryRow>(`SELECT ${REGISTRY_COLUMNS} FROM subscription_registry WHERE tenant_id = $1 AND id = $2`, [tenantId, id]);
  return rows[0];
}

export interface EventToQueue {
  resourceType: string;
  resourceId: string;
  versionId: number;
  interaction: string;
}

/**
 * Queues one event-notification for each subscription, numbering it. The UPDATE locks each
 * subscription's registry row until commit, so concurrent writers that match the same
 * subscription take their numbers, and their places in the queue, in commit order.
 */
export async function queueEvents(tx: Queryable, tenantId: string, subscriptionIds: string[], event: EventToQueue): Promise<void> {
  await tx.query(
    `WITH numbered AS (
       UPDATE subscription_registry SET events_count = events_count + 1, queue_seq = queue_seq + 1
        WHERE tenant_id = $1 AND id = ANY($2::text[])
        RETURNING id, events_count, queue_seq)
     INSERT INTO subscription_notification
       (tenant_id, subscription_id, seq, event_number, type, resource_type, resource_id, version_id, interaction, webhook_id)
     SELECT $1, id, queue_seq, events_count, 'event-notification', $3, $4, $5, $6, 'msg_' || replace(gen_random_uuid()::text, '-', '')
       FROM numbered`,
    [tenantId, subscriptionIds, event.resourceType, event.resourceId, event.versionId, event.interaction],
  );
  await tx.query(`SELECT pg_notify('${NOTIFY_CHANNEL}', '')`);
}

/** Queues a handshake or heartbeat: ordered with the events, but not counted as one. */
export async function queueSignal(tx: Queryable, tenantId: string, subscriptionId: string, type: 'handshake' | 'heartbeat'): Promise<void> {
  await tx.query(
    `WITH bumped AS (
       UPDATE subscription_registry SET queue_seq = queue_seq + 1 WHERE tenant_id = $1 AND id = $2 RETURNING queue_seq)
     INSERT INTO subscription_notification (tenant_id, subscription_id, seq, type, webhook_id)
     SELECT $1, $2, queue_seq, $3, $4 FROM bumped`,
    [tenantId, subscriptionId, type, `msg_${randomUUID().replaceAll('-', '')}`],
  );
  await tx.query(`SELECT pg_notify('${NOTIFY_CHANNEL}', '')`);
}

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
  /** The claim's fencing token: renewals and the finish apply only under it. */
  leaseToken: string;
}

/** The advisory lock key of a subscription (of the row `candidate` in claimDue). */
const SUBSCRIPTION_LOCK = `hashtextextended(tenant_id || '/' || id, 727001)`;

/** What a claim returns: the notification (u) with its subscription's registry row (s). */
const CLAIMED_COLUMNS = `u.tenant_id AS "tenantId", u.subscription_id AS "subscriptionId", u.seq::int AS seq,
  u.event_number::int AS "eventNumber", u.type, u.resource_type AS "resourceType", u.resource_id AS "resourceId",
  u.version_id AS "versionId", u.interaction, u.occurred_at AS "occurredAt", u.webhook_id AS "webhookId",
  u.attempts, s.status, s.config, s.events_count::int AS "eventsCount", u.lease_token::text AS "leaseToken"`;

/**
 * Claims due notifications, at most one per subscription: its head of line (oldest pending
 * notification), when that is due and not in flight, so a failing notification holds the ones
 * behind it. A transaction-scoped advisory lock per subscription lets any number of workers claim
 * side by side without two taking the same head (writers, who lock the registry row to number
 * events, are not waited for); the lease then keeps a claimed notification theirs while in
 * flight (renewed by the worker while it sends; see renewLeases), and the UPDATE re-checks it. Cost: one index probe per deliverable subscription, not per
 * pending notification, so a deep backlog does not slow claiming down.
 */
export async function claimDue(tx: Queryable, limit: number, leaseSeconds: number): Promise<ClaimedNotification[]> {
  return tx.query<ClaimedNotification>(
    `WITH candidate AS MATERIALIZED (
       SELECT s.tenant_id, s.id, h.seq FROM subscription_registry s
        CROSS JOIN LATERAL (
          SELECT n.seq, n.type, n.next_attempt_at, n.lease_until FROM subscription_notification n
           WHERE n.tenant_id = s.tenant_id AND n.subscription_id = s.id AND n.status = 'pending'
           ORDER BY n.seq LIMIT 1) h
        WHERE s.status IN ('active', 'requested')
          AND h.next_attempt_at <= now() AND (h.lease_until IS NULL OR h.lease_until < now())
          AND (s.status = 'active' OR h.type = 'handshake')),
     head AS (
       SELECT * FROM candidate WHERE pg_try_advisory_xact_lock(${SUBSCRIPTION_LOCK}) LIMIT $1)
     UPDATE subscription_notification u
        SET lease_until = now() + make_interval(secs => $2), lease_token = gen_random_uuid(), attempts = u.attempts + 1
       FROM head, subscription_registry s
      WHERE u.tenant_id = head.tenant_id AND u.subscription_id = head.id AND u.seq = head.seq
        AND u.status = 'pending' AND (u.lease_until IS NULL OR u.lease_until < now())
        AND s.tenant_id = u.tenant_id AND s.id = u.subscription_id
      RETURNING ${CLAIMED_COLUMNS}`,
    [limit, leaseSeconds],
  );
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

type Key = Pick<ClaimedNotification, 'tenantId' | 'subscriptionId' | 'seq' | 'leaseToken'>;

/** What finishAttempt did: nothing when the lease was no longer ours (`fenced`). */
export type FinishResult = { fenced: true } | { fenced: false; next: ClaimedNotification | undefined };

/**
 * Records an attempt and its outcome in one statement: the attempt row, the notification's new
 * state, once delivered the subscription's last_sent_at (for heartbeats), once dead the registry's
 * status (error). After a delivery
 * the same statement leases the subscription's next notification, if one is due, and returns it:
 * a busy subscription's queue then costs one transaction per notification, with no claim in
 * between. Otherwise it wakes the workers (NOTIFY), since a notification may now be claimable.
 * All of it applies only under the claim's lease token: a worker whose lease ran out and was
 * taken over changes nothing (the new owner sends and records the notification).
 */
export async function finishAttempt(
  tx: Queryable,
  n: Key,
  result: AttemptResult,
  outcome: AttemptOutcome,
  leaseSeconds: number,
): Promise<FinishResult> {
  const delivered = outcome.next === 'delivered';
  const rows = await tx.query<{ finished: number } & Partial<ClaimedNotification>>(
    `WITH mine AS (
       UPDATE subscription_notification
          SET status = $7, lease_until = NULL, lease_token = NULL, last_error = $8,
              delivered_at = CASE WHEN $7 = 'delivered' THEN now() END,
              next_attempt_at = now() + make_interval(secs => $9)
        WHERE tenant_id = $1 AND subscription_id = $2 AND seq = $3 AND lease_token = $12::uuid
        RETURNING seq),
     attempt AS (
       INSERT INTO delivery_attempt (tenant_id, subscription_id, seq, http_status, latency_ms, error)
       SELECT $1, $2, $3, $4, $5, $6 FROM mine),
     s AS (
       SELECT tenant_id, id, status, config, events_count FROM subscription_registry WHERE tenant_id = $1 AND id = $2),
     -- Only heartbeats need last_sent_at; other subscriptions' rows stay unlocked for writers.
     sent AS (
       UPDATE subscription_registry SET last_sent_at = now()
        WHERE $10 AND tenant_id = $1 AND id = $2 AND config ? 'heartbeatSeconds' AND EXISTS (SELECT 1 FROM mine)),
     -- A dead letter stops the subscription here and now, so no worker claims the next notification
     -- before the Subscription resource is moved to error (the registry mirrors it).
     stopped AS (
       UPDATE subscription_registry SET status = 'error'
        WHERE $7 = 'dead' AND tenant_id = $1 AND id = $2 AND EXISTS (SELECT 1 FROM mine)),
     u AS (
       UPDATE subscription_notification u
          SET lease_until = now() + make_interval(secs => $11), lease_token = gen_random_uuid(), attempts = u.attempts + 1
        WHERE u.tenant_id = $1 AND u.subscription_id = $2
          AND u.seq = (SELECT n.seq FROM subscription_notification n
                        WHERE n.tenant_id = $1 AND n.subscription_id = $2 AND n.status = 'pending' AND n.seq > $3
                        ORDER BY n.seq LIMIT 1)
          AND $10 AND (SELECT status FROM s) = 'active' AND EXISTS (SELECT 1 FROM mine)
          AND u.next_attempt_at <= now() AND (u.lease_until IS NULL OR u.lease_until < now())
        RETURNING u.*),
     claimed AS (
       SELECT ${CLAIMED_COLUMNS}, pg_notify('${NOTIFY_CHANNEL}', '') FROM u, s)
     SELECT 1 AS finished, claimed.* FROM mine LEFT JOIN claimed ON true`,
    [
      n.tenantId,
      n.subscriptionId,
      n.seq,
      result.httpStatus ?? null,
      Math.round(result.latencyMs),
      result.error ?? null,
      outcome.next === 'retry' ? 'pending' : outcome.next,
      delivered ? null : outcome.error,
      outcome.next === 'retry' ? outcome.delayMs / 1000 : 0,
      delivered,
      leaseSeconds,
      n.leaseToken,
    ],
  );
  if (rows.length === 0) return { fenced: true };
  const { finished: _finished, pg_notify: _notify, ...claimed } = rows[0] as typeof rows[0] & { pg_notify?: unknown };
  if (claimed.tenantId == null) {
    await tx.query(`SELECT pg_notify('${NOTIFY_CHANNEL}', '')`);
    return { fenced: false, next: undefined };
  }
  return { fenced: false, next: claimed as ClaimedNotification };
}

export interface HeldLease {
  tenantId: string;
  subscriptionId: string;
  seq: number;
  leaseToken: string;
}

/** Extends the leases still held under their tokens; returns the tokens renewed (the others are lost). */
export async function renewLeases(conn: Queryable, leases: readonly HeldLease[], leaseSeconds: number): Promise<Set<string>> {
  if (leases.length === 0) return new Set();
  const rows = await conn.query<{ token: string }>(
    `UPDATE subscription_notification n SET lease_until = now() + make_interval(secs => $5)
       FROM unnest($1::text[], $2::text[], $3::bigint[], $4::uuid[]) AS l(tenant_id, subscription_id, seq, token)
      WHERE n.tenant_id = l.tenant_id AND n.subscription_id = l.subscription_id AND n.seq = l.seq
        AND n.lease_token = l.token AND n.status = 'pending'
      RETURNING n.lease_token::text AS token`,
    [leases.map((l) => l.tenantId), leases.map((l) => l.subscriptionId), leases.map((l) => l.seq), leases.map((l) => l.leaseToken), leaseSeconds],
  );
  return new Set(rows.map((r) => r.token));
}

/** Dead notifications go back to the queue, in their original order. */
export async function requeueDead(tx: Queryable, tenantId: string, subscriptionId: string): Promise<number> {
  const rows = await tx.query<{ n: number }>(
    `WITH requeued AS (
       UPDATE subscription_notification SET status = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL
        WHERE tenant_id = $1 AND subscription_id = $2 AND status = 'dead' RETURNING 1)
     SELECT count(*)::int AS n FROM requeued`,
    [tenantId, subscriptionId],
  );
  await tx.query(`SELECT pg_notify('${NOTIFY_CHANNEL}', '')`);
  return rows[0].n;
}

export interface StoredEvent {
  eventNumber: number;
  resourceType: string;
  resourceId: string;
  versionId: number;
  interaction: string;
  occurredAt: Date;
  /** The version's JSON, when asked for (never for a delete). */
  content: string | null;
}

/** Stored events by number, at most 1000, with the versions they are about when `withContent`. */
export async function eventsInRange(
  conn: Queryable,
  tenantId: string,
  subscriptionId: string,
  range: { from: number; to: number; withContent: boolean },
): Promise<StoredEvent[]> {
  return conn.query<StoredEvent>(
    `SELECT n.event_number::int AS "eventNumber", n.resource_type AS "resourceType", n.resource_id AS "resourceId",
            n.version_id AS "versionId", n.interaction, n.occurred_at AS "occurredAt", h.content
       FROM subscription_notification n
       LEFT JOIN resource_history h
         ON $5 AND n.interaction <> 'delete' AND h.tenant_id = n.tenant_id AND h.resource_type = n.resource_type
        AND h.id = n.resource_id AND h.version_id = n.version_id
      WHERE n.tenant_id = $1 AND n.subscription_id = $2 AND n.event_number BETWEEN $3 AND $4
      ORDER BY n.event_number LIMIT 1000`,
    [tenantId, subscriptionId, range.from, range.to, range.withContent],
  );
}

/** Active subscriptions with a heartbeat period whose last notification is older than it. */
export async function heartbeatsDue(conn: Queryable): Promise<{ tenantId: string; id: string }[]> {
  return conn.query(
    `SELECT s.tenant_id AS "tenantId", s.id FROM subscription_registry s
      WHERE s.status = 'active' AND s.config ? 'heartbeatSeconds'
        AND coalesce(s.last_sent_at, '-infinity') < now() - make_interval(secs => (s.config->>'heartbeatSeconds')::int)
        AND NOT EXISTS (SELECT 1 FROM subscription_notification n
                         WHERE n.tenant_id = s.tenant_id AND n.subscription_id = s.id AND n.status = 'pending')`,
  );
}

/** Reads the stored version an event is about. */
export async function versionContent(conn: Queryable, tenantId: string, resourceType: string, id: string, versionId: number): Promise<string | undefined> {
  const rows = await conn.query<{ content: string }>(
    `SELECT content FROM resource_history WHERE tenant_id = $1 AND resource_type = $2 AND id = $3 AND version_id = $4`,
    [tenantId, resourceType, id, versionId],
  );
  return rows[0]?.content;
}
