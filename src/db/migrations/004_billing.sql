-- Billing (src/billing/) and the inbound event journal (src/inbound/journal.ts).
-- Money columns are numeric(18,2): USD (and every currency we take) has two minor digits.
-- Every table has tenant_id first in its key, and every query filters on it.

-- Per-tenant billing settings. No row: the defaults (CLAIM_ID_SYSTEM).
CREATE TABLE billing_setting (
  tenant_id       text PRIMARY KEY REFERENCES tenant (id),
  -- Claim.identifier system a sender's bill id is looked up in
  claim_id_system text NOT NULL,
  updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per patient that money has moved for. Every money movement of a patient (payment,
-- resend, allocation of a credit) takes this row FOR UPDATE first, so they run one at a time:
-- credits belong to one patient, so their balances need no lock of their own.
CREATE TABLE billing_account (
  tenant_id   text NOT NULL,
  -- the Claim's patient reference, e.g. Patient/123
  patient_ref text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, patient_ref)
);

-- One row per claim lifecycle that money has been applied to: patientPaidAmount, which always
-- equals the sum of the lifecycle's ledger account, and the row lock of the lifecycle.
CREATE TABLE billing_lifecycle (
  tenant_id           text NOT NULL,
  lifecycle_id        text NOT NULL,
  patient_paid_amount numeric(18,2) NOT NULL DEFAULT 0,
  currency            text NOT NULL DEFAULT 'USD',
  updated_at          timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, lifecycle_id)
);

-- PatientPaymentDetails: one row per patient payment, whatever its sender. payment_key is its
-- identity: `trace:<paymentTraceId>`, or without one `bill:<billId>|<amount>|<date>|<method>`.
CREATE TABLE patient_payment (
  tenant_id                 text NOT NULL,
  id                        text NOT NULL,
  payment_key               text NOT NULL,
  source                    text NOT NULL,
  bill_id                   text NOT NULL,
  payment_trace_id          text,
  claim_id                  text NOT NULL,
  lifecycle_id              text NOT NULL,
  patient_ref               text NOT NULL,
  amount                    numeric(18,2) NOT NULL CHECK (amount > 0),
  applied_amount            numeric(18,2) NOT NULL CHECK (applied_amount >= 0),
  credited_amount           numeric(18,2) NOT NULL CHECK (credited_amount >= 0),
  currency                  text NOT NULL,
  payment_date              date NOT NULL,
  payment_method            text,
  claim_response_id         text,
  payment_reconciliation_id text NOT NULL,
  patient_credit_id         text,
  created_at                timestamptz NOT NULL DEFAULT now(),
  updated_at                timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, payment_key),
  CHECK (amount = applied_amount + credited_amount)
);
CREATE INDEX patient_payment_lifecycle_idx ON patient_payment (tenant_id, lifecycle_id);

-- Every movement of money, double entry: the rows of one movement (movement_id) sum to zero.
-- Accounts: payer (the patient, money comes from there), payment (a payment's money in transit:
-- zero once the payment is processed), lifecycle (paid towards a claim lifecycle: its
-- patientPaidAmount), credit (a PatientCredit's balance).
-- Kinds: payment.received, payment.applied, payment.credited, credit.allocated and their
-- reversals payment.reduced, applied.reversed, credit.reduced, allocation.reversed.
CREATE TABLE ledger_entry (
  tenant_id     text NOT NULL,
  id            bigint GENERATED ALWAYS AS IDENTITY,
  movement_id   text NOT NULL,
  kind          text NOT NULL,
  account_type  text NOT NULL,
  account_id    text NOT NULL,
  amount        numeric(18,2) NOT NULL,
  currency      text NOT NULL,
  payment_id    text,
  credit_id     text,
  allocation_id text,
  claim_id      text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX ledger_entry_account_idx ON ledger_entry (tenant_id, account_type, account_id);
CREATE INDEX ledger_entry_payment_idx ON ledger_entry (tenant_id, payment_id);
CREATE INDEX ledger_entry_movement_idx ON ledger_entry (tenant_id, movement_id);

-- Every inbound webhook event, as received, with what we answered. dedupe_key is the sender's
-- identity of the event (for Cair: the payment's identity); content_hash tells a duplicate (same
-- content as the last processed event with that key) from an update.
-- status: processed | duplicate | unmatched (no claim yet) | refused | failed
CREATE TABLE inbound_event (
  tenant_id     text NOT NULL,
  -- in the order events took the dedupe lock: the last processed event is the highest id
  id            bigint GENERATED ALWAYS AS IDENTITY,
  source        text NOT NULL,
  event_type    text NOT NULL,
  dedupe_key    text NOT NULL,
  content_hash  text NOT NULL,
  body          text NOT NULL,
  status        text NOT NULL,
  response      text,
  error         text,
  duplicate_of  bigint,
  received_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX inbound_event_dedupe_idx ON inbound_event (tenant_id, source, dedupe_key, id);
