-- One delivery_attempt row per request sent, not per notification: a Backport bundle of 100
-- events was 100 attempt rows (inserted into four indexes), most of the cost of finishing its
-- run. A request that carried several notifications records its first as seq and its last here;
-- they are consecutive (send.ts never bundles across a gap). NULL: the request carried seq alone.
ALTER TABLE delivery_attempt ADD COLUMN last_seq bigint;
