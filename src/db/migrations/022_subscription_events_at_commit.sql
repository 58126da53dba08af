-- A write's event-notifications are numbered and queued at its COMMIT, by a deferred trigger,
-- instead of by a statement of the write. Numbering locks the matched subscriptions' counters
-- until commit (so that event numbers follow commit order); taken by a statement, they were held
-- through the round trips to the application and back for COMMIT, and with 100 subscriptions
-- matching every write, writers queued on those locks (measured: about 15 writers waiting at any
-- moment, the holder idle in transaction, 23 writes/s). Taken here, they are held only for the
-- numbering itself and the commit's WAL flush.
--
-- The write names its events in a transaction-local setting (subscriptions/store.ts queueEvents:
-- one JSON object and a comma each); every outbox row (one per resource write, in the write's
-- statement) queues this trigger, and the first to run at commit queues them all and clears it.
CREATE FUNCTION queue_subscription_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  queued text := current_setting('fhir_billing.queued_events', true);
  streams text;
BEGIN
  IF queued IS NULL OR queued = '' THEN
    RETURN NULL;
  END IF;
  PERFORM set_config('fhir_billing.queued_events', '', true);
  WITH event AS (
         SELECT x.k, x.e FROM jsonb_array_elements(('[' || left(queued, -1) || ']')::jsonb) WITH ORDINALITY AS x(e, k)),
       wanted AS (
         SELECT event.k, event.e, event.e->>'tenant' AS tenant_id, s.id
           FROM event CROSS JOIN LATERAL jsonb_array_elements_text(event.e->'subscriptions') AS s(id)),
       -- In one order (tenant, id) for every writer, so writers matching the same subscriptions
       -- queue up instead of deadlocking, even when one transaction writes many resources.
       locked AS (
         SELECT c.tenant_id, c.id FROM subscription_counter c
          WHERE (c.tenant_id, c.id) IN (SELECT tenant_id, id FROM wanted)
          ORDER BY c.tenant_id, c.id FOR UPDATE),
       ranked AS (
         SELECT w.*, row_number() OVER (PARTITION BY w.tenant_id, w.id ORDER BY w.k) AS r,
                count(*) OVER (PARTITION BY w.tenant_id, w.id) AS n
           FROM wanted w),
       numbered AS (
         UPDATE subscription_counter c SET events_count = c.events_count + x.n, queue_seq = c.queue_seq + x.n
           FROM (SELECT DISTINCT tenant_id, id, n FROM ranked) x JOIN locked l ON l.tenant_id = x.tenant_id AND l.id = x.id
          WHERE c.tenant_id = x.tenant_id AND c.id = x.id
          RETURNING c.tenant_id, c.id, c.events_count, c.queue_seq, x.n)
  -- occurred_at: the commit's time (this runs inside it), not the transaction's start.
  INSERT INTO subscription_notification
    (tenant_id, subscription_id, seq, event_number, type, resource_type, resource_id, version_id, interaction, webhook_id, occurred_at)
  SELECT r.tenant_id, r.id, nb.queue_seq - nb.n + r.r, nb.events_count - nb.n + r.r, 'event-notification',
         r.e->>'resourceType', r.e->>'resourceId', (r.e->>'versionId')::int, r.e->>'interaction',
         'msg_' || replace(gen_random_uuid()::text, '-', ''), clock_timestamp()
    FROM ranked r JOIN numbered nb ON nb.tenant_id = r.tenant_id AND nb.id = r.id;
  -- The streams that have something new (subscriptions/store.ts notifiedStreams), or '' (any)
  -- when they would not fit in a NOTIFY payload.
  SELECT CASE WHEN length(p) < 7900 THEN p ELSE '' END INTO streams
    FROM (SELECT coalesce(json_agg(DISTINCT (e->>'tenant') || '/' || s.id)::text, '') AS p
            FROM jsonb_array_elements(('[' || left(queued, -1) || ']')::jsonb) AS e
            CROSS JOIN LATERAL jsonb_array_elements_text(e->'subscriptions') AS s(id)) AS payload;
  PERFORM pg_notify('fhir_billing_notifications', streams);
  RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER outbox_queue_subscription_events AFTER INSERT ON outbox
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION queue_subscription_events();
