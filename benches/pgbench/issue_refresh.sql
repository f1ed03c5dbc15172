-- What IssueToken with a refresh token commits on Postgres: ONE statement (src/store/sql.rs
-- INSERT_GRANT_WITH_REFRESH) inserting a refresh family (grants) and its first refresh token,
-- with the same shapes of values; autocommit, as tokend sends it. (pgbench reads `:name` even
-- inside string literals, hence chr(58) for the colon of urn:tokend.)
\set n random(1, 9000000000000000)
WITH g AS (INSERT INTO grants (grant_id, client_id, scopes, audiences, create_time_us,
    access_expire_time_us, refresh_expire_time_us, revoke_time_us, token_generation)
    VALUES ('pgb-' || :client_id || '-' || :n, 'pgbench-client', '["bench.read"]',
    ('["urn' || chr(58) || 'tokend"]')::jsonb, 1, 2, 3, NULL, 0) RETURNING grant_id)
INSERT INTO refresh_tokens (token_hash, grant_id, create_time_us, expire_time_us, use_time_us)
    SELECT md5(random()::text || :n) || md5(:n::text), grant_id, 1, 3, NULL FROM g;
