-- Token lifecycle: refresh-token families, opaque access tokens, the deny list and the change
-- log every replica tails to keep its in-memory view (clients, revocations) current.

-- How the client's access tokens look: 'jwt' or 'opaque'.
ALTER TABLE clients ADD COLUMN access_token_format TEXT NOT NULL DEFAULT 'jwt';
-- Bumped by RevokeClientTokens and by disabling: access tokens carry the generation they were
-- issued under (claim `gen`) and are inactive once it is behind the client's.
ALTER TABLE clients ADD COLUMN token_generation BIGINT NOT NULL DEFAULT 0;

-- A refresh-token family: one per IssueToken that returned a refresh token.
CREATE TABLE grants (
    grant_id               TEXT PRIMARY KEY,
    client_id              TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    scopes                 TEXT NOT NULL,
    audiences              TEXT NOT NULL,
    create_time_us         BIGINT NOT NULL,
    -- The client's token generation when the family began: a family of an older generation
    -- (RevokeClientTokens, disabling) never exchanges again.
    token_generation       BIGINT NOT NULL,
    -- Latest expiry of any access token issued from the family.
    access_expire_time_us  BIGINT NOT NULL,
    -- Expiry of the family's newest refresh token.
    refresh_expire_time_us BIGINT NOT NULL,
    revoke_time_us         BIGINT
);
CREATE INDEX grants_client ON grants (client_id);
CREATE INDEX grants_expiry ON grants (refresh_expire_time_us);

-- Refresh tokens, stored only as SHA-256 (hex) of the token string.
CREATE TABLE refresh_tokens (
    token_hash     TEXT PRIMARY KEY,
    grant_id       TEXT NOT NULL REFERENCES grants (grant_id) ON DELETE CASCADE,
    create_time_us BIGINT NOT NULL,
    expire_time_us BIGINT NOT NULL,
    -- Set, once, by the exchange that spent the token.
    use_time_us    BIGINT
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expire_time_us);

-- Opaque access tokens, stored only as SHA-256 (hex) of the token string.
CREATE TABLE opaque_tokens (
    token_hash     TEXT PRIMARY KEY,
    jti            TEXT NOT NULL,
    client_id      TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    -- The same claim set a JWT access token would carry.
    claims         TEXT NOT NULL,
    expire_time_us BIGINT NOT NULL
);
CREATE INDEX opaque_tokens_client ON opaque_tokens (client_id);
CREATE INDEX opaque_tokens_expiry ON opaque_tokens (expire_time_us);

-- The deny list: single access tokens (kind 'token', subject = jti) and whole refresh families
-- (kind 'grant', subject = grant id) revoked before they expire. A row is purged once every
-- token it covers has expired.
CREATE TABLE revocations (
    kind           TEXT NOT NULL,
    subject        TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    expire_time_us BIGINT NOT NULL,
    create_time_us BIGINT NOT NULL,
    PRIMARY KEY (kind, subject)
);
CREATE INDEX revocations_expiry ON revocations (expire_time_us);

-- The change log. Every write that changes what Introspect answers appends a row in the same
-- transaction (kinds 'client', 'token', 'grant', 'keys'); writers are serialised so sequence
-- order is commit order. Rows are purged after a retention period.
CREATE TABLE changes (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT NOT NULL,
    subject        TEXT NOT NULL,
    expire_time_us BIGINT NOT NULL,
    create_time_us BIGINT NOT NULL
);
CREATE INDEX changes_time ON changes (create_time_us);
