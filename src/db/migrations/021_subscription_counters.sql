-- A subscription's counters (events numbered, queue position) move out of its registry row into a
-- narrow table of their own. Every matched write bumped them, so the registry row, which every
-- write's match lookup and every delivery claim reads, piled up a dead version per write: with
-- autovacuum off (or between its runs) a claim read 86 pages for one live row after 3,600
-- writes, and it grew with each. Here only the writers that number events touch the row, and
-- fillfactor 10 leaves its page room for those updates to stay HOT (no new index entries).
CREATE TABLE subscription_counter (
  tenant_id     text NOT NULL,
  id            text NOT NULL,
  -- numbers of event-notifications so far (events-since-subscription-start)
  events_count  bigint NOT NULL DEFAULT 0,
  -- position of the last queued notification of any type, for delivery order
  queue_seq     bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, id) REFERENCES subscription_registry (tenant_id, id) ON DELETE CASCADE
) WITH (fillfactor = 10);

INSERT INTO subscription_counter (tenant_id, id, events_count, queue_seq)
SELECT tenant_id, id, events_count, queue_seq FROM subscription_registry;

ALTER TABLE subscription_registry DROP COLUMN events_count, DROP COLUMN queue_seq;
