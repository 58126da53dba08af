import { randomUUID } from 'node:crypto';
import type { Queryable } from '../db/index.ts';
import type { SubscriptionConfig } from './definition.ts';

/** The SQL of Subscriptions (migrations 003, 021, 022, 023): registry, counters, events, notification queue, replay; delivery's is in runs.ts. */
export const NOTIFY_CHANNEL = 'fhir_billing_notifications';

/** The NOTIFY of a commit that recorded events (migration 023): a fan-out is due. Any other payload: a claim is. */
export const EVENTS_PENDING = 'events';

/** What one fan-out did: the streams ("tenant/subscription") it queued notifications for, and whether it left committed writes for the next. */
export interface FanOut {
  streams: string[];
  more: boolean;
}

/** Most committed writes one fan-out numbers (each with every subscription it matched). */
const FAN_OUT_BATCH = 500;

/**
 * Numbers and queues the events of up to `batch` committed writes, oldest first (migration 023's
 * fan_out_subscription_events): what delivery runs when writes NOTIFY, and what readers of the
 * queue run first so that they see every committed write's events. Safe to run anywhere, any
 * number of times: fan-outs take turns, and each takes only what the last left.
 */
export async function fanOutEvents(conn: Queryable): Promise<FanOut> {
  const rows = await conn.query<{ result: { taken: number; streams: string[] } }>(
    'SELECT fan_out_subscription_events($1) AS result', [FAN_OUT_BATCH], { prepare: true });
  const { taken, streams } = rows[0].result;
  return { streams, more: taken === FAN_OUT_BATCH };
}

/** fanOutEvents until nothing committed is left to number. */
export async function fanOutAllEvents(conn: Queryable): Promise<void> {
  while ((await fanOutEvents(conn)).more);
}

export type RegistryStatus = 'requested' | 'active' | 'error' | 'off';
export type NotificationType = 'handshake' | 'heartbeat' | 'event-notification';

export interface RegistryRow {
  tenantId: string;
  id: string;
  status: RegistryStatus;
  config: SubscriptionConfig;
  /** New with each insert of the row: tells this subscription from one deleted before it under its id (migration 029). */
  generation: string;
}

const REGISTRY_COLUMNS = `s.tenant_id AS "tenantId", s.id, s.status, s.config, s.generation::text AS generation`;

/** A subscription's registry row, its counters (subscription_counter, migration 021) and its delivery lease (028). */
export async function upsertRegistry(tx: Queryable, tenantId: string, id: string, status: RegistryStatus, config: SubscriptionConfig): Promise<void> {
  await tx.query(
    `INSERT INTO subscription_registry (tenant_id, id, status, resource_type, config) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (tenant_id, id) DO UPDATE SET status = EXCLUDED.status, resource_type = EXCLUDED.resource_type, config = EXCLUDED.config`,
    [tenantId, id, status, config.resourceType, JSON.stringify(config)],
  );
  await tx.query('INSERT INTO subscription_counter (tenant_id, id) VALUES ($1, $2) ON CONFLICT DO NOTHING', [tenantId, id]);
  await tx.query('INSERT INTO subscription_lease (tenant_id, id) VALUES ($1, $2) ON CONFLICT DO NOTHING', [tenantId, id]);
}

/**
 * Its notifications and their attempts, registry row and (by cascade) counters and lease. The
 * attempts go too: a Subscription created again under the id numbers its notifications from 1,
 * and would be shown its predecessor's attempts.
 */
export async function deleteRegistry(tx: Queryable, tenantId: string, id: string): Promise<void> {
  await tx.query('DELETE FROM delivery_attempt WHERE tenant_id = $1 AND subscription_id = $2', [tenantId, id]);
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
    `SELECT ${REGISTRY_COLUMNS} FROM subscription_registry s WHERE s.tenant_id = $1 AND s.resource_type = $2 AND s.status IN ('active', 'error')`,
    [tenantId, resourceType],
    { prepare: true }, // asked on every write
  );
}

export async function getRegistry(conn: Queryable, tenantId: string, id: string): Promise<(RegistryRow & { eventsCount: number }) | undefined> {
  const rows = await conn.query<RegistryRow & { eventsCount: number }>(
    `SELECT ${REGISTRY_COLUMNS}, c.events_count::int AS "eventsCount"
       FROM subscription_registry s JOIN subscription_counter c ON c.tenant_id = s.tenant_id AND c.id = s.id
      WHERE s.tenant_id = $1 AND s.id = $2`,
    [tenantId, id],
  );
  return rows[0];
}

export interface EventToQueue {
  resourceType: string;
  resourceId: string;
  versionId: number;
  interaction: string;
}

/** The transaction-local setting a write names its events in, for the commit trigger (migrations 022, 023). */
const QUEUED_EVENTS_SETTING = 'fhir_billing.queued_events';

/**
 * Records an event for the subscriptions it matched. The event is named in a transaction-local
 * setting; at COMMIT, a deferred trigger on the outbox row that every resource write inserts
 * records the transaction's events in one row and NOTIFYs (migration 023), and delivery's
 * fan-out numbers and queues them (fanOutEvents). So a write takes no lock for its
 * subscriptions, however many it matches. Called only from a resource write's transaction
 * (observer.ts), after its outbox row.
 */
export async function queueEvents(tx: Queryable, tenantId: string, matched: Pick<RegistryRow, 'id' | 'generation'>[], event: EventToQueue): Promise<void> {
  const queued = JSON.stringify({ tenant: tenantId, subscriptions: matched.map((s) => s.id), generations: matched.map((s) => s.generation), ...event });
  await tx.query(`SELECT set_config($1, coalesce(current_setting($1, true), '') || $2 || ',', true)`, [QUEUED_EVENTS_SETTING, queued], { prepare: true });
}

/** Queues a handshake or heartbeat: ordered with the events, but not counted as one. */
export async function queueSignal(tx: Queryable, tenantId: string, subscriptionId: string, type: 'handshake' | 'heartbeat'): Promise<void> {
  await tx.query(
    `WITH bumped AS (
       UPDATE subscription_counter SET queue_seq = queue_seq + 1 WHERE tenant_id = $1 AND id = $2 RETURNING queue_seq)
     INSERT INTO subscription_notification (tenant_id, subscription_id, seq, type, webhook_id)
     SELECT $1, $2, queue_seq, $3, $4 FROM bumped`,
    [tenantId, subscriptionId, type, `msg_${randomUUID().replaceAll('-', '')}`],
  );
  await tx.query(`SELECT pg_notify('${NOTIFY_CHANNEL}', '')`);
}

/**
 * Wakes every worker (a NOTIFY on its own, outside any transaction): after a worker stopped or
 * yielded a stream with notifications left in it.
 */
export async function wakeWorkers(conn: Queryable): Promise<void> {
  await conn.query(`SELECT pg_notify('${NOTIFY_CHANNEL}', '')`);
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
