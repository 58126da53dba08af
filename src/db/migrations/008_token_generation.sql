-- Secret rotation revokes every access token issued before it. tokens_valid_after (whole seconds,
-- compared with the JWT's iat, also whole seconds) let a token issued in the rotation's own second
-- live on; a counter has no such blind spot. Tokens carry the generation they were issued under
-- (claim `gen`; absent: 0) and verify only while it is the client's current one.
ALTER TABLE api_client ADD COLUMN token_generation integer NOT NULL DEFAULT 0;
