-- A run is leased on its subscription's row here instead of on each notification it holds. Each
-- notification was written three times after the fan-out inserted it (leased, finished, and in
-- the finish the next run leased again); now it is written once, when finished, and a run of 100
-- costs one lease row update, not 100. The lease is also the stream's mutex: a claim takes it
-- only when it is free or has run out, a finish records its run only while it still holds the
-- token, and renewals touch one row a stream.
CREATE TABLE subscription_lease (
  tenant_id   text NOT NULL,
  id          text NOT NULL,
  -- the fencing token of the run in flight; NULL: no run is leased
  token       uuid,
  lease_until timestamptz,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, id) REFERENCES subscription_registry (tenant_id, id) ON DELETE CASCADE
) WITH (fillfactor = 10);
INSERT INTO subscription_lease (tenant_id, id) SELECT tenant_id, id FROM subscription_registry;
-- Leases in flight stay valid: a worker that is running when this applies finishes its run.
UPDATE subscription_lease l SET token = n.lease_token, lease_until = n.lease_until
  FROM (SELECT DISTINCT ON (tenant_id, subscription_id) tenant_id, subscription_id, lease_token, lease_until
          FROM subscription_notification WHERE status = 'pending' AND lease_until > now()
         ORDER BY tenant_id, subscription_id, lease_until DESC) n
 WHERE l.tenant_id = n.tenant_id AND l.id = n.subscription_id;
ALTER TABLE subscription_notification DROP COLUMN lease_until, DROP COLUMN lease_token;
