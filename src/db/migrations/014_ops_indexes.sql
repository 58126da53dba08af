-- The operator read models (src/ops/): the console pages the journal newest first by status or
-- source, and counts messages and delivery attempts per hour. Without these each of those read the
-- whole tenant's journal or attempts (bench/ops.ts: seconds on 500,000 events).
CREATE INDEX inbound_event_status_idx ON inbound_event (tenant_id, status, id);
CREATE INDEX inbound_event_source_name_idx ON inbound_event (tenant_id, source, id);
CREATE INDEX inbound_event_received_idx ON inbound_event (tenant_id, received_at);
CREATE INDEX delivery_attempt_time_idx ON delivery_attempt (tenant_id, attempted_at);
CREATE INDEX delivery_attempt_subscription_time_idx ON delivery_attempt (tenant_id, subscription_id, attempted_at);
-- Dead notifications are few and counted often (the overview, the subscriptions list).
CREATE INDEX subscription_notification_dead_idx ON subscription_notification (tenant_id, subscription_id) WHERE status = 'dead';
