-- private_key_jwt (RFC 7523 section 2.2): how each client may authenticate (RFC 7591 method
-- names; existing clients keep the two secret methods they always had) and the client's own
-- public keys (a JWK Set as compact JSON; empty: none).
ALTER TABLE clients ADD COLUMN auth_methods JSONB NOT NULL
    DEFAULT '["client_secret_basic","client_secret_post"]';
ALTER TABLE clients ADD COLUMN jwks TEXT NOT NULL DEFAULT '';
