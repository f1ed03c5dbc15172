-- One client, :families refresh families with one unspent refresh token each. The families'
-- expiries start at 0, so every exchange moves them forward (an indexed column, as in tokend).
INSERT INTO clients (client_id, tenant, name, description, scopes, audiences, roles,
    access_token_ttl_secs, refresh_token_ttl_secs, active, allowed_cidrs, rate_limit_per_minute,
    metadata, create_time_us, update_time_us, revision)
    VALUES ('pgbench-client', 'system', 'pgbench', '', '["bench.read"]', '[]', '[]', 300, 3600,
    true, '[]', 0, '{}', 0, 0, 1);
INSERT INTO grants (grant_id, client_id, scopes, audiences, create_time_us,
    access_expire_time_us, refresh_expire_time_us, revoke_time_us, token_generation)
    SELECT 'pgbench-grant-' || g, 'pgbench-client', '["bench.read"]', '["urn:tokend"]', 0,
    0, 0, NULL, 0 FROM generate_series(1, :families) g;
INSERT INTO refresh_tokens (token_hash, grant_id, create_time_us, expire_time_us, use_time_us)
    SELECT 'seed-' || g, 'pgbench-grant-' || g, 0, 4000000000000000, NULL
    FROM generate_series(1, :families) g;
