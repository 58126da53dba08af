-- A tenant's book currency (ISO 4217, upper case): every amount its billing takes, writes on FHIR
-- Money and books in the ledger is in it; an amount in another currency is refused, never
-- converted. Set when the tenant is created; changeable only while no money is booked. Currencies
-- with more than 2 minor digits (BHD, KWD) are refused by the code, since money columns are
-- numeric(18,2).
ALTER TABLE tenant ADD COLUMN currency text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$');
