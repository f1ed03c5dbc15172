-- The `jti` of every client assertion accepted, kept until the assertion expires: the insert of
-- a `jti` seen before fails on the primary key, on whichever replica it is tried, so an
-- assertion is used once. The purge deletes expired rows.
CREATE TABLE assertion_jtis (
    client_id      TEXT   NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    jti            TEXT   NOT NULL,
    expire_time_us BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX assertion_jtis_expire ON assertion_jtis (expire_time_us);
