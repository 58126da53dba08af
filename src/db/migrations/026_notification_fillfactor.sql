-- A notification row is written by the fan-out and then updated twice: leased (lease_until,
-- lease_token, attempts), then finished (status). Leasing touches no indexed column, so it can
-- be a HOT update (no new index entries) if the row's page has room; the fan-out filled pages to
-- the brim, so every lease wrote new entries into all three of the queue's indexes. New pages now
-- keep half free for those versions.
ALTER TABLE subscription_notification SET (fillfactor = 50);
