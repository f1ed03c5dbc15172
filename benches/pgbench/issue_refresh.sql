-- What IssueToken with a refresh token commits on Postgres: ONE statement (src/store/sql.rs
-- INSERT_GRANT_WITH_REFRESH) inserting a refresh family (grants) and its first refresh token,
-- with the same shapes of values; autocommit, as tokend sends it. Grant ids lead with the
-- time, like tokend's UUIDv7 ones, and the expiries rise with the clock, as tokend's do (both
-- are indexed). (pgbench reads `:name` even inside string literals, hence chr(58) for the
-- colon of urn:tokend.)
\set n random(1, 9000000000000000)
WITH g AS (INSERT INTO grants (grant_id, client_id, scopes, audiences, create_time_us,
    access_expire_time_us, refresh_expire_time_us, revoke_time_us, token_generation)
    VALUES ('pgb-' || (extract(epoch FROM clock_timestamp()) * 1000000)::bigint || '-'
        || :client_id || '-' || :n, 'pgbench-client', '["bench.read"]',
    ('["urn' || chr(58) || 'tokend"]')::jsonb,
    (extract(epoch FROM clock_timestamp()) * 1000000)::bigint,
    (extract(epoch FROM clock_timestamp()) * 1000000)::bigint + 300000000,
    (extract(epoch FROM clock_timestamp()) * 1000000)::bigint + 3600000000, NULL, 0)
    RETURNING grant_id)
INSERT INTO refresh_tokens (token_hash, grant_id, create_time_us, expire_time_us, use_time_us)
    SELECT md5(random()::text || :n) || md5(:n::text), grant_id,
    (extract(epoch FROM clock_timestamp()) * 1000000)::bigint,
    (extract(epoch FROM clock_timestamp()) * 1000000)::bigint + 3600000000, NULL FROM g;
