-- Indexes whose choice does not depend on statistics.
--
-- On a table never analysed (the embedded database has no autovacuum; PostgreSQL may run without
-- it) the planner takes (tenant_id, resource_type) to match about one row, so every index that
-- starts with those two columns looks as good as the one that fits the query. It then read a
-- Claim by id through resource_last_updated_idx (every Claim of the tenant per read) and looked
-- an identifier up through search_token_resource_idx (every index row of every Claim): O(N) per
-- lookup, O(N^2) per search. Here only the index that fits a lookup starts with (tenant_id,
-- resource_type): the others put their distinguishing column second, so they look (and are) a
-- scan of the tenant. tenant_id stays first in every key.

DROP INDEX resource_last_updated_idx;
CREATE INDEX resource_last_updated_idx ON resource (tenant_id, last_updated, resource_type, id);

DROP INDEX resource_history_type_idx;
CREATE INDEX resource_history_type_idx ON resource_history (tenant_id, last_updated, resource_type);

DROP INDEX search_token_resource_idx;
CREATE INDEX search_token_resource_idx ON search_token (tenant_id, resource_id, resource_type);

DROP INDEX search_string_resource_idx;
CREATE INDEX search_string_resource_idx ON search_string (tenant_id, resource_id, resource_type);

DROP INDEX search_reference_resource_idx;
CREATE INDEX search_reference_resource_idx ON search_reference (tenant_id, resource_id, resource_type);

DROP INDEX search_date_resource_idx;
CREATE INDEX search_date_resource_idx ON search_date (tenant_id, resource_id, resource_type);

DROP INDEX search_number_resource_idx;
CREATE INDEX search_number_resource_idx ON search_number (tenant_id, resource_id, resource_type);
