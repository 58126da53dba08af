-- A Subscription deleted and created again under its id (a PUT after a DELETE) got the events its
-- predecessor had matched that were not fanned out yet: the fan-out paired an event with a
-- subscription by id alone. A registry row now has a generation, new with each insert (an upsert
-- of a later version keeps it); a write names it beside each subscription it matched, and the
-- fan-out leaves out a subscription whose generation is no longer the registry's. Otherwise the
-- same function as 025's.
CREATE SEQUENCE subscription_generation;
ALTER TABLE subscription_registry ADD COLUMN generation bigint NOT NULL DEFAULT nextval('subscription_generation');
CREATE OR REPLACE FUNCTION fan_out_subscription_events(batch integer) RETURNS jsonb LANGUAGE plpgsql
SET jit = off SET work_mem = '64MB' AS $$
DECLARE
  result jsonb;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended(current_schema(), 727002));
  WITH taken AS (
         DELETE FROM subscription_event_pending p
          WHERE p.id IN (SELECT id FROM subscription_event_pending ORDER BY id LIMIT batch)
          RETURNING p.id, p.events, p.occurred_at),
       event AS MATERIALIZED (
         SELECT t.id AS pending_id, x.k, t.occurred_at, x.e->>'tenant' AS tenant_id, x.e->'subscriptions' AS subscriptions, x.e->'generations' AS generations,
                x.e->>'resourceType' AS resource_type, x.e->>'resourceId' AS resource_id,
                (x.e->>'versionId')::int AS version_id, x.e->>'interaction' AS interaction
           FROM taken t CROSS JOIN LATERAL jsonb_array_elements(t.events) WITH ORDINALITY AS x(e, k)),
       paired AS MATERIALIZED (
         SELECT v.pending_id, v.k, v.occurred_at, v.tenant_id, s.id, (v.generations->>(s.i - 1)::int)::bigint AS generation,
                v.resource_type, v.resource_id, v.version_id, v.interaction
           FROM event v CROSS JOIN LATERAL jsonb_array_elements_text(v.subscriptions) WITH ORDINALITY AS s(id, i)),
       -- The subscriptions that are still the ones the writes matched, one probe each (not one a
       -- pair). Rows written before this migration name no generation: any is theirs.
       live AS (
         SELECT p.tenant_id, p.id, coalesce(p.generation, -1) AS generation FROM (SELECT DISTINCT tenant_id, id, generation FROM paired) p
          WHERE p.generation IS NULL
             OR EXISTS (SELECT 1 FROM subscription_registry r WHERE r.tenant_id = p.tenant_id AND r.id = p.id AND r.generation = p.generation)),
       ranked AS MATERIALIZED (
         SELECT p.pending_id, p.k, p.occurred_at, p.tenant_id, p.id, p.resource_type, p.resource_id, p.version_id, p.interaction,
                row_number() OVER (PARTITION BY p.tenant_id, p.id ORDER BY p.pending_id, p.k) AS r,
                count(*) OVER (PARTITION BY p.tenant_id, p.id) AS n
           FROM paired p JOIN live l ON l.tenant_id = p.tenant_id AND l.id = p.id AND l.generation = coalesce(p.generation, -1)),
       numbered AS (
         UPDATE subscription_counter c SET events_count = c.events_count + x.n, queue_seq = c.queue_seq + x.n
           FROM (SELECT DISTINCT tenant_id, id, n FROM ranked) x
          WHERE c.tenant_id = x.tenant_id AND c.id = x.id
          RETURNING c.tenant_id, c.id, c.events_count, c.queue_seq, x.n),
       queued AS (
         INSERT INTO subscription_notification
           (tenant_id, subscription_id, seq, event_number, type, resource_type, resource_id, version_id, interaction, webhook_id, occurred_at)
         SELECT r.tenant_id, r.id, nb.queue_seq - nb.n + r.r, nb.events_count - nb.n + r.r, 'event-notification',
                r.resource_type, r.resource_id, r.version_id, r.interaction,
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
