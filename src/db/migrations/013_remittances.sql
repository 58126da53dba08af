-- Issue 15: payer remittances (X12 835). One row per payer payment (its BPR/TRN), identified by the
-- payer's trace (TRN02 under TRN03), so the same file or trace again changes nothing; and one row
-- per claim payment (CLP) in it, which is also the suspense of a CLP whose claim is not here yet.
-- Money columns are numeric(18,2); every table has tenant_id first in its key.
CREATE TABLE remittance (
  tenant_id                 text NOT NULL,
  id                        text NOT NULL,
  trace_key                 text NOT NULL,
  trace_number              text NOT NULL,
  payer_id                  text NOT NULL,
  payment_amount            numeric(18,2) NOT NULL,
  payment_date              date NOT NULL,
  payment_reconciliation_id text NOT NULL,
  -- sha-256 of the transaction set's segments as received (ST through SE)
  content_hash              text NOT NULL,
  header                    jsonb NOT NULL,
  created_at                timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, trace_key)
);

-- status: applied (its ClaimResponse written or reversed), waiting (no claim with its bill id yet).
-- adjudication: the ClaimResponse to write (without request and patient) and what it reverses.
CREATE TABLE remittance_claim (
  tenant_id          text NOT NULL,
  remittance_id      text NOT NULL,
  seq                integer NOT NULL,
  bill_id            text NOT NULL,
  claim_id_system    text NOT NULL,
  payer_claim_id     text,
  status_code        text NOT NULL,
  paid_amount        numeric(18,2) NOT NULL,
  status             text NOT NULL CHECK (status IN ('applied', 'waiting')),
  claim_id           text,
  claim_response_id  text,
  adjudication       jsonb NOT NULL,
  created_at         timestamptz NOT NULL DEFAULT now(),
  applied_at         timestamptz,
  PRIMARY KEY (tenant_id, remittance_id, seq),
  FOREIGN KEY (tenant_id, remittance_id) REFERENCES remittance (tenant_id, id)
);
CREATE INDEX remittance_claim_waiting ON remittance_claim (tenant_id, bill_id) WHERE status = 'waiting';
