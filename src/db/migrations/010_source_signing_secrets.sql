-- Signing secrets of webhook sources that sign their posts with an HMAC (Curacel, Tyro). Unlike a
-- Basic password they cannot be hashed: verifying an HMAC needs the key itself. So they are kept
-- sealed (AES-256-GCM, src/auth/sealing.ts) under SECRETS_KEY, or, when that is not configured,
-- under a key generated once and kept in sealing_key.
ALTER TABLE webhook_source ADD COLUMN signing_secret_sealed text;

CREATE TABLE sealing_key (
  id         smallint PRIMARY KEY CHECK (id = 1),
  key        text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
