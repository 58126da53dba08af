-- Adjudications a sender reports (a health fund's decision on a claim, and what it paid): one row
-- per response identity (ClaimResponse.identifier), so a sender's events apply in its own order
-- (as_of, then stage: a final state is never replaced by an earlier one), and so a decision for a
-- claim that is not here yet waits (status waiting) and applies, once, when the Claim is written.
CREATE TABLE adjudication (
  tenant_id                 text NOT NULL,
  response_key              text NOT NULL,
  source                    text NOT NULL,
  bill_id                   text NOT NULL,
  as_of                     timestamptz NOT NULL,
  stage                     integer NOT NULL,
  final                     boolean NOT NULL,
  input                     jsonb NOT NULL,
  status                    text NOT NULL CHECK (status IN ('waiting', 'applied')),
  claim_response_id         text,
  payment_reconciliation_id text,
  received_at               timestamptz NOT NULL DEFAULT now(),
  updated_at                timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, response_key)
);
CREATE INDEX adjudication_waiting_idx ON adjudication (tenant_id, bill_id) WHERE status = 'waiting';
