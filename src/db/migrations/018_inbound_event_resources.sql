-- What each message's transaction wrote (`Type/id` of every resource, in write order, billing's
-- follow-up writes included: fhir/write-log.ts), recorded with the event. NULL for events journalled
-- before this column, whose resources the operator API still infers from their answer.
ALTER TABLE inbound_event ADD COLUMN resources jsonb;
