-- The FHIR store: current versions, full history, search index and the outbox.
-- Every row carries tenant_id, first in every key, and every query filters on it.

CREATE TABLE tenant (
  id         text PRIMARY KEY,
  name       text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Current version of every resource. `content` is the JSON exactly as served (text keeps the
-- element order of the FHIR JSON format; search never reads it, it reads the index tables below).
CREATE TABLE resource (
  tenant_id     text NOT NULL REFERENCES tenant (id),
  resource_type text NOT NULL,
  id            text NOT NULL,
  version_id    integer NOT NULL,
  last_updated  timestamptz NOT NULL,
  deleted       boolean NOT NULL DEFAULT false,
  content       text NOT NULL,
  PRIMARY KEY (tenant_id, resource_type, id)
);
CREATE INDEX resource_last_updated_idx ON resource (tenant_id, resource_type, last_updated, id);

-- Every version ever written, deletes included (content of a delete is the last live content).
CREATE TABLE resource_history (
  tenant_id     text NOT NULL,
  resource_type text NOT NULL,
  id            text NOT NULL,
  version_id    integer NOT NULL,
  last_updated  timestamptz NOT NULL,
  deleted       boolean NOT NULL DEFAULT false,
  content       text NOT NULL,
  PRIMARY KEY (tenant_id, resource_type, id, version_id)
);
CREATE INDEX resource_history_type_idx ON resource_history (tenant_id, resource_type, last_updated);

-- Search index: one row per value a search parameter yields for the current version.
-- `code` is the search parameter's code (e.g. 'identifier'); rows of deleted resources are removed.
CREATE TABLE search_token (
  tenant_id     text NOT NULL,
  resource_type text NOT NULL,
  resource_id   text NOT NULL,
  code          text NOT NULL,
  system        text,
  value         text
);
CREATE INDEX search_token_value_idx ON search_token (tenant_id, resource_type, code, value, system);
CREATE INDEX search_token_resource_idx ON search_token (tenant_id, resource_type, resource_id);

CREATE TABLE search_string (
  tenant_id     text NOT NULL,
  resource_type text NOT NULL,
  resource_id   text NOT NULL,
  code          text NOT NULL,
  value         text NOT NULL,
  -- lower-cased, accents removed: what the default (starts-with, case-insensitive) search compares
  normalized    text NOT NULL
);
CREATE INDEX search_string_value_idx ON search_string (tenant_id, resource_type, code, normalized text_pattern_ops);
CREATE INDEX search_string_resource_idx ON search_string (tenant_id, resource_type, resource_id);

CREATE TABLE search_reference (
  tenant_id     text NOT NULL,
  resource_type text NOT NULL,
  resource_id   text NOT NULL,
  code          text NOT NULL,
  -- 'Patient/123' for a relative reference, the URL as written otherwise
  reference     text NOT NULL,
  target_id     text
);
CREATE INDEX search_reference_value_idx ON search_reference (tenant_id, resource_type, code, reference);
CREATE INDEX search_reference_target_idx ON search_reference (tenant_id, resource_type, code, target_id);
CREATE INDEX search_reference_resource_idx ON search_reference (tenant_id, resource_type, resource_id);

-- A date, dateTime, instant or Period as the range of instants it covers.
CREATE TABLE search_date (
  tenant_id     text NOT NULL,
  resource_type text NOT NULL,
  resource_id   text NOT NULL,
  code          text NOT NULL,
  low           timestamptz,
  high          timestamptz
);
CREATE INDEX search_date_low_idx ON search_date (tenant_id, resource_type, code, low);
CREATE INDEX search_date_high_idx ON search_date (tenant_id, resource_type, code, high);
CREATE INDEX search_date_resource_idx ON search_date (tenant_id, resource_type, resource_id);

-- number and quantity parameters; money is never compared as a float, so value is numeric.
CREATE TABLE search_number (
  tenant_id     text NOT NULL,
  resource_type text NOT NULL,
  resource_id   text NOT NULL,
  code          text NOT NULL,
  value         numeric NOT NULL,
  system        text,
  unit          text
);
CREATE INDEX search_number_value_idx ON search_number (tenant_id, resource_type, code, value);
CREATE INDEX search_number_resource_idx ON search_number (tenant_id, resource_type, resource_id);

-- One row per committed resource change, written in the same transaction as the change, so a
-- committed write can never lose its notification. Subscriptions read it.
CREATE TABLE outbox (
  seq           bigserial PRIMARY KEY,
  tenant_id     text NOT NULL,
  resource_type text NOT NULL,
  resource_id   text NOT NULL,
  version_id    integer NOT NULL,
  interaction   text NOT NULL CHECK (interaction IN ('create', 'update', 'delete')),
  recorded_at   timestamptz NOT NULL DEFAULT now()
);

INSERT INTO tenant (id, name) VALUES ('default', 'Bootstrap tenant');
