-- KEK rotation. Signing keys already name the KEK that seals them (signing_keys.kek_id); every
-- existing row was sealed under the one KEK there was, so no backfill is needed.
--
-- Secrets other than signing keys, sealed under the KEK like them and re-sealed with them by
-- `tokend kek rotate`. One today: `mac_key`, the HMAC key refresh-token successors are derived
-- with, which must not change when the KEK does.
CREATE TABLE sealed_secrets (
    name           TEXT PRIMARY KEY,
    sealed         BYTEA NOT NULL,
    kek_id         TEXT NOT NULL,
    create_time_us BIGINT NOT NULL
);
