-- A write's commit no longer numbers its events for each matched subscription: it records them
-- once, and delivery fans them out. With 022, each write's commit locked and bumped the counter of
-- every subscription it matched and inserted a notification for each, so writers matching the same
-- 100 subscriptions held 100 row locks through their WAL flush, one writer after another
-- (measured: 44-53 writes/s where 200 were sent). Now a commit inserts one row here and NOTIFYs
-- 'events'; the numbering moves to fan_out_subscription_events, run by delivery (in batches, one
-- fan-out at a time) and by the operations that read the queue ($status, $events).
--
-- Order: a later write of the same resource waits for the earlier one's commit (its row lock)
-- before its own commit inserts a row here, so it always has the higher id and is always visible
-- with or after the earlier one; a fan-out takes what it sees in id order, so each resource's
-- events keep their order, and every subscription's numbers run without gaps.
CREATE TABLE subscription_event_pending (
  id           bigserial PRIMARY KEY,
  -- the transaction's events: [{tenant, subscriptions: [id, ...], resourceType, resourceId, versionId, interaction}]
  events       jsonb NOT NULL,
  -- the commit's time: what each notification's occurred_at will be
  occurred_at  timestamptz NOT NULL
);

-- The commit's side (022's trigger, same setting): one row and a NOTIFY, no lock on any counter.
CREATE OR REPLACE FUNCTION queue_subscription_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  queued text := current_setting('fhir_billing.queued_events', true);
BEGIN
  IF queued IS NULL OR queued = '' THEN
    RETURN NULL;
  END IF;
  PERFORM set_config('fhir_billing.queued_events', '', true);
  INSERT INTO subscription_event_pending (events, occurred_at)
  VALUES (('[' || left(queued, -1) || ']')::jsonb, clock_timestamp());
  -- subscriptions/store.ts EVENTS_PENDING: a fan-out is due.
  PERFORM pg_notify('fhir_billing_notifications', 'events');
  RETURN NULL;
END
$$;

-- Numbers and queues up to `batch` pending rows' events, oldest first, and returns
-- {"taken": rows taken, "streams": ["tenant/subscription", ...] that got notifications}.
-- The advisory lock (one per schema) makes fan-outs take turns; each waits, then reads what has
-- committed by then (every statement of a function sees the commits before it), so a NOTIFY's
-- events are never left behind by a fan-out that started before they committed. Events of a subscription deleted since
-- the write are dropped with it (no counter row to number them).
CREATE FUNCTION fan_out_subscription_events(batch integer) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  result jsonb;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended(current_schema(), 727002));
  WITH taken AS (
         DELETE FROM subscription_event_pending p
          WHERE p.id IN (SELECT id FROM subscription_event_pending ORDER BY id LIMIT batch)
          RETURNING p.id, p.events, p.occurred_at),
       wanted AS (
         SELECT t.id AS pending_id, x.k, x.e, x.e->>'tenant' AS tenant_id, s.id, t.occurred_at
           FROM taken t
          CROSS JOIN LATERAL jsonb_array_elements(t.events) WITH ORDINALITY AS x(e, k)
          CROSS JOIN LATERAL jsonb_array_elements_text(x.e->'subscriptions') AS s(id)),
       ranked AS (
         SELECT w.*, row_number() OVER (PARTITION BY w.tenant_id, w.id ORDER BY w.pending_id, w.k) AS r,
                count(*) OVER (PARTITION BY w.tenant_id, w.id) AS n
           FROM wanted w),
       numbered AS (
         UPDATE subscription_counter c SET events_count = c.events_count + x.n, queue_seq = c.queue_seq + x.n
           FROM (SELECT DISTINCT tenant_id, id, n FROM ranked) x
          WHERE c.tenant_id = x.tenant_id AND c.id = x.id
          RETURNING c.tenant_id, c.id, c.events_count, c.queue_seq, x.n),
       queued AS (
         INSERT INTO subscription_notification
           (tenant_id, subscription_id, seq, event_number, type, resource_type, resource_id, version_id, interaction, webhook_id, occurred_at)
         SELECT r.tenant_id, r.id, nb.queue_seq - nb.n + r.r, nb.events_count - nb.n + r.r, 'event-notification',
                r.e->>'resourceType', r.e->>'resourceId', (r.e->>'versionId')::int, r.e->>'interaction',
                'msg_' || replace(gen_random_uuid()::text, '-', ''), r.occurred_at
           FROM ranked r JOIN numbered nb ON nb.tenant_id = r.tenant_id AND nb.id = r.id
         RETURNING tenant_id, subscription_id)
  SELECT jsonb_build_object(
           'taken', (SELECT count(*) FROM taken),
           'streams', coalesce((SELECT jsonb_agg(DISTINCT tenant_id || '/' || subscription_id) FROM queued), '[]'::jsonb))
    INTO result;
  RETURN result;
END
$$;
