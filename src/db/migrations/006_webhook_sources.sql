-- Webhook sources (src/inbound/sources/): one row per sender registered for a tenant, and the
-- journal's raw side (src/inbound/journal.ts).

-- A sender's webhook endpoint is /api/webhooks/<kind>/<id>: the id alone names the source, so it is
-- unique across tenants; the tenant is read from the row, never from the request.
CREATE TABLE webhook_source (
  tenant_id               text NOT NULL REFERENCES tenant (id),
  id                      text NOT NULL UNIQUE,
  kind                    text NOT NULL,
  name                    text NOT NULL,
  enabled                 boolean NOT NULL DEFAULT true,
  -- CIDRs as text; empty allows every address
  allowed_ips             jsonb NOT NULL DEFAULT '[]',
  -- Claim.identifier system the sender's bill ids are looked up in; NULL: the tenant's
  claim_identifier_system text,
  -- the kind's own options (for instamed: auth mode, Basic username, field map, required header)
  options                 jsonb NOT NULL DEFAULT '{}',
  -- scrypt hash of a credential we only verify (a Basic password); NULL when the kind has none
  secret_hash             text,
  created_at              timestamptz NOT NULL DEFAULT now(),
  updated_at              timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);

-- The journal keeps what came in as it came: the body text (XML and NVP are not JSON), its
-- Content-Type, the source it came through and a few headers that explain it (never credentials).
ALTER TABLE inbound_event ADD COLUMN source_id text;
ALTER TABLE inbound_event ADD COLUMN content_type text;
ALTER TABLE inbound_event ADD COLUMN raw_body text;
ALTER TABLE inbound_event ADD COLUMN headers jsonb;
CREATE INDEX inbound_event_source_idx ON inbound_event (tenant_id, source_id, id);
