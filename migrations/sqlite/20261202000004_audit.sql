-- The audit trail and per-client usage.

-- One row per event; aggregated token-endpoint refusals are one row per client, kind and
-- minute, whose count grows (event_id is derived from those three).
CREATE TABLE audit_events (
    event_id       TEXT PRIMARY KEY,
    time_us        BIGINT NOT NULL,
    tenant         TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    actor          TEXT NOT NULL,
    source_address TEXT NOT NULL,
    kind           TEXT NOT NULL,
    details        TEXT NOT NULL,
    count          BIGINT NOT NULL
);
-- Newest first, per tenant and per client; purge by time.
CREATE INDEX audit_events_time ON audit_events (time_us, event_id);
CREATE INDEX audit_events_tenant ON audit_events (tenant, time_us, event_id);
CREATE INDEX audit_events_client ON audit_events (client_id, time_us, event_id);

-- Usage counters per client and UTC day (days since the Unix epoch), added to in batches.
CREATE TABLE client_usage (
    client_id               TEXT NOT NULL,
    day                     BIGINT NOT NULL,
    tokens_issued           BIGINT NOT NULL DEFAULT 0,
    refreshes               BIGINT NOT NULL DEFAULT 0,
    refused_address         BIGINT NOT NULL DEFAULT 0,
    refused_rate_limit      BIGINT NOT NULL DEFAULT 0,
    refused_lockout         BIGINT NOT NULL DEFAULT 0,
    refused_bad_secret      BIGINT NOT NULL DEFAULT 0,
    introspections_active   BIGINT NOT NULL DEFAULT 0,
    introspections_inactive BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (client_id, day)
);
CREATE INDEX client_usage_day ON client_usage (day);

-- Where the client last obtained a token from.
ALTER TABLE clients ADD COLUMN last_used_address TEXT;

-- Failed client authentications per subject (`client:<id>` or `address:<net>`), counted for
-- the whole deployment: each failure adds one in the current window; a lock resets the count
-- and adds a strike (an address's next lock lasts twice as long).
CREATE TABLE auth_failures (
    subject         TEXT PRIMARY KEY,
    window_start_us BIGINT NOT NULL,
    failures        BIGINT NOT NULL,
    strikes         BIGINT NOT NULL,
    locked_until_us BIGINT NOT NULL
);
