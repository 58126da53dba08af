-- Delivery leases become short and renewed while a send is in flight (subscriptions/worker.ts), so
-- a crashed worker's claim runs out in seconds. Each claim takes a fresh token; renewing a lease
-- and recording an attempt's outcome apply only under the token of the claim, so a worker whose
-- lease ran out and was taken over can no longer change the notification.
ALTER TABLE subscription_notification ADD COLUMN lease_token uuid;
