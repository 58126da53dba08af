-- Authentication (src/auth/): API clients, token signing keys, replay protection and rate limits.

-- An API client belongs to one tenant. Its id is global, since a token request names only the
-- client; secrets are stored only as scrypt hashes. A deleted client keeps its row (so its id is
-- never reused) and its tokens stop working at once.
CREATE TABLE api_client (
  id                 text PRIMARY KEY,
  tenant_id          text NOT NULL REFERENCES tenant (id),
  name               text NOT NULL,
  secret_hash        text NOT NULL,
  scopes             text[] NOT NULL,
  -- SMART Backend Services: the client's public keys, inline (a JWK Set as JSON) or at a URL
  jwks               text,
  jwks_url           text,
  -- access tokens issued before this instant (whole seconds) are refused: set by rotate-secret
  tokens_valid_after timestamptz,
  created_at         timestamptz NOT NULL DEFAULT now(),
  deleted_at         timestamptz
);
CREATE INDEX api_client_tenant_idx ON api_client (tenant_id, created_at);

-- Keys that sign access tokens (ES256), shared by every process. The newest key without
-- retire_at signs; every key verifies until its retire_at, so a rotation overlaps.
CREATE TABLE signing_key (
  kid         text PRIMARY KEY,
  alg         text NOT NULL,
  public_jwk  text NOT NULL,
  private_jwk text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  retire_at   timestamptz
);

-- jti of every client assertion (private_key_jwt) until it expires: an assertion is used once.
CREATE TABLE client_assertion_jti (
  client_id  text NOT NULL,
  jti        text NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertion_jti_expires_idx ON client_assertion_jti (expires_at);

-- Failed token requests per client and per address, kept by rate-limiter-flexible's
-- RateLimiterPostgres (its table layout), so the limit holds across every server process.
CREATE TABLE auth_rate_limit (
  key    varchar(255) PRIMARY KEY,
  points integer NOT NULL DEFAULT 0,
  expire bigint
);
