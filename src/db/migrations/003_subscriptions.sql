-- Subscriptions: the registry of subscriptions that can match, and the per-subscription queue of
-- notifications that workers deliver. Event rows are written in the same transaction as the
-- resource change they announce, so a committed change cannot lose its notification.

-- One row per Subscription resource, derived from it in the transaction that writes it.
CREATE TABLE subscription_registry (
  tenant_id        text NOT NULL,
  id               text NOT NULL,
  -- requested | active | error | off (mirrors Subscription.status)
  status           text NOT NULL,
  -- the type whose changes can match, for the lookup every write makes
  resource_type    text NOT NULL,
  -- parsed once at write time: kind, criteria, endpoint, headers, payload, signing, retries
  config           jsonb NOT NULL,
  -- numbers of event-notifications so far (events-since-subscription-start)
  events_count     bigint NOT NULL DEFAULT 0,
  -- position of the last queued notification of any type, for delivery order
  queue_seq        bigint NOT NULL DEFAULT 0,
  last_sent_at     timestamptz,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX subscription_registry_match_idx ON subscription_registry (tenant_id, resource_type) WHERE status = 'active';
CREATE INDEX subscription_registry_deliverable_idx ON subscription_registry (status) WHERE status IN ('active', 'requested');

-- Every notification to deliver, in per-subscription order (seq). Event-notifications carry their
-- event number and stay after delivery, for $events replay; handshakes and heartbeats have none.
CREATE TABLE subscription_notification (
  tenant_id        text NOT NULL,
  subscription_id  text NOT NULL,
  seq              bigint NOT NULL,
  event_number     bigint,
  -- handshake | heartbeat | event-notification
  type             text NOT NULL,
  resource_type    text,
  resource_id      text,
  version_id       integer,
  interaction      text,
  occurred_at      timestamptz NOT NULL DEFAULT now(),
  -- the webhook-id receivers deduplicate on: stable across retries
  webhook_id       text NOT NULL,
  -- pending | delivered | dead
  status           text NOT NULL DEFAULT 'pending',
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  -- a worker owns the notification until then; a crashed worker's lease simply runs out
  lease_until      timestamptz,
  last_error       text,
  delivered_at     timestamptz,
  PRIMARY KEY (tenant_id, subscription_id, seq)
);
-- Each subscription's head of line (its oldest pending notification) in one index probe.
CREATE INDEX subscription_notification_pending_idx ON subscription_notification (tenant_id, subscription_id, seq) WHERE status = 'pending';
CREATE UNIQUE INDEX subscription_notification_event_idx ON subscription_notification (tenant_id, subscription_id, event_number) WHERE event_number IS NOT NULL;

-- Every delivery attempt: when, the answer, how long it took.
CREATE TABLE delivery_attempt (
  id               bigserial PRIMARY KEY,
  tenant_id        text NOT NULL,
  subscription_id  text NOT NULL,
  seq              bigint NOT NULL,
  attempted_at     timestamptz NOT NULL DEFAULT now(),
  http_status      integer,
  latency_ms       integer NOT NULL,
  error            text
);
CREATE INDEX delivery_attempt_notification_idx ON delivery_attempt (tenant_id, subscription_id, seq);
