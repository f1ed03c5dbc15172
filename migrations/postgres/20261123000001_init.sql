-- tokend schema, Postgres. Timestamps are Unix microseconds (BIGINT) so that both
-- backends share one row model; list-like fields are JSON.
CREATE TABLE clients (
    client_id              TEXT PRIMARY KEY,
    tenant                 TEXT NOT NULL,
    name                   TEXT NOT NULL,
    description            TEXT NOT NULL DEFAULT '',
    scopes                 JSONB NOT NULL,
    audiences              JSONB NOT NULL,
    roles                  JSONB NOT NULL,
    access_token_ttl_secs  BIGINT NOT NULL,
    refresh_token_ttl_secs BIGINT NOT NULL,
    active                 BOOLEAN NOT NULL,
    allowed_cidrs          JSONB NOT NULL,
    rate_limit_per_minute  BIGINT NOT NULL,
    metadata               JSONB NOT NULL,
    create_time_us         BIGINT NOT NULL,
    update_time_us         BIGINT NOT NULL,
    last_used_time_us      BIGINT,
    revision               BIGINT NOT NULL
);
CREATE INDEX clients_tenant_id ON clients (tenant, client_id);

CREATE TABLE client_secrets (
    secret_id      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    -- First 8 bytes of SHA-256(secret), hex: finds the one hash to verify without trying each.
    selector       TEXT NOT NULL,
    hash           TEXT NOT NULL,
    create_time_us BIGINT NOT NULL,
    expire_time_us BIGINT
);
CREATE INDEX client_secrets_client ON client_secrets (client_id, selector);

CREATE TABLE signing_keys (
    kid              TEXT PRIMARY KEY,
    algorithm        TEXT NOT NULL,
    public_jwk       TEXT NOT NULL,
    private_key      BYTEA NOT NULL,
    kek_id           TEXT NOT NULL,
    create_time_us   BIGINT NOT NULL,
    activate_time_us BIGINT NOT NULL,
    retire_time_us   BIGINT
);
