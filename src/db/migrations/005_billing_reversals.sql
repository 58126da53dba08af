-- Issue 10's money side (src/billing/): reversals, settlement, unmatched (held) payments.
-- Money columns are numeric(18,2); every table has tenant_id first in its key.

-- A payment now carries its life after approval: cancelled by a void, its settlement, and what
-- the processor told about the card and its own identifiers (never a full card number).
-- reversed_amount: what refunds, returns, chargebacks and a void have given back (payment_reversal
-- has each); applied_amount and credited_amount stay what the payment put where, before reversals.
ALTER TABLE patient_payment
  ADD COLUMN status            text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cancelled')),
  ADD COLUMN reversed_amount   numeric(18,2) NOT NULL DEFAULT 0 CHECK (reversed_amount >= 0),
  ADD COLUMN settlement_date   date,
  ADD COLUMN settlement_failed boolean NOT NULL DEFAULT false,
  ADD COLUMN instrument        jsonb,
  ADD COLUMN identifiers       jsonb;
ALTER TABLE patient_payment ADD CONSTRAINT patient_payment_reversed_within CHECK (reversed_amount <= amount);

-- One row per reversal (void, refund, return, chargeback). reversal_key is its identity:
-- `<kind>:<reversal trace id>` (a void: the original's trace id). A reversal whose original is
-- not here yet waits (status waiting, payment_id null) and applies when that payment is recorded.
-- from_balance / from_applied / from_allocations: where the money came back from (credit balance,
-- the claim's paid total, the credit's allocations to claims).
CREATE TABLE payment_reversal (
  tenant_id                 text NOT NULL,
  id                        text NOT NULL,
  reversal_key              text NOT NULL,
  source                    text NOT NULL,
  kind                      text NOT NULL CHECK (kind IN ('void', 'refund', 'return', 'chargeback')),
  original_key              text NOT NULL,
  reversal_trace_id         text NOT NULL,
  -- null: all that remains of the original, decided when it applies
  requested_amount          numeric(18,2) CHECK (requested_amount > 0),
  amount                    numeric(18,2) NOT NULL DEFAULT 0 CHECK (amount >= 0),
  from_balance              numeric(18,2) NOT NULL DEFAULT 0,
  from_applied              numeric(18,2) NOT NULL DEFAULT 0,
  from_allocations          numeric(18,2) NOT NULL DEFAULT 0,
  status                    text NOT NULL CHECK (status IN ('waiting', 'applied', 'refused')),
  refusal                   text,
  payment_id                text,
  reversal_date             date NOT NULL,
  payment_reconciliation_id text,
  identifiers               jsonb,
  created_at                timestamptz NOT NULL DEFAULT now(),
  applied_at                timestamptz,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, reversal_key),
  CHECK (status <> 'applied' OR amount = from_balance + from_applied + from_allocations)
);
CREATE INDEX payment_reversal_original_idx ON payment_reversal (tenant_id, original_key, status);

-- The ledger row of a reversal names it.
ALTER TABLE ledger_entry ADD COLUMN reversal_id text;

-- Payments whose claim is not here (yet). mode hold: applies by itself, once, when a Claim with
-- that bill id is written (in that write's transaction); hold-for-operator: only when an operator
-- applies it. input is the payment command as it arrived (amounts as decimal text).
-- status: waiting | applied (payment_id set) | discarded (reason set).
CREATE TABLE unmatched_payment (
  tenant_id   text NOT NULL,
  id          text NOT NULL,
  payment_key text NOT NULL,
  source      text NOT NULL,
  bill_id     text NOT NULL,
  mode        text NOT NULL CHECK (mode IN ('hold', 'hold-for-operator')),
  amount      numeric(18,2) NOT NULL CHECK (amount > 0),
  input       jsonb NOT NULL,
  status      text NOT NULL DEFAULT 'waiting' CHECK (status IN ('waiting', 'applied', 'discarded')),
  reason      text,
  payment_id  text,
  received_at timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  resolved_at timestamptz,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, payment_key)
);
CREATE INDEX unmatched_payment_waiting_idx ON unmatched_payment (tenant_id, bill_id) WHERE status = 'waiting';
