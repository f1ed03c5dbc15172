-- What RefreshToken commits on Postgres: ONE statement (src/store/sql.rs ROTATE_REFRESH),
-- autocommit as tokend sends it: claim the presented token (a conditional UPDATE by primary
-- key, with the same EXISTS join on grants and clients), extend its family and return it,
-- insert the successor.
-- The claim matches a seeded token that is never spent (use_time_us stays NULL: it sets
-- use_time_us = NULL), so every iteration does the same work as a first exchange; the family's
-- expiries move forward with the clock, as tokend's do (grants_expiry is updated each time).
\set g random(1, :families)
WITH claimed AS (UPDATE refresh_tokens SET use_time_us = NULL
    WHERE token_hash = 'seed-' || :g AND use_time_us IS NULL AND expire_time_us > 1
    AND EXISTS (SELECT 1 FROM grants g JOIN clients c ON c.client_id = g.client_id
        WHERE g.grant_id = refresh_tokens.grant_id AND g.client_id = 'pgbench-client'
        AND g.revoke_time_us IS NULL AND g.token_generation = c.token_generation)
    RETURNING grant_id),
extended AS (UPDATE grants SET
        access_expire_time_us = GREATEST(access_expire_time_us,
            (extract(epoch FROM clock_timestamp()) * 1000000)::bigint + 300000000),
        refresh_expire_time_us = GREATEST(refresh_expire_time_us,
            (extract(epoch FROM clock_timestamp()) * 1000000)::bigint + 3600000000)
    WHERE grant_id = (SELECT grant_id FROM claimed) AND revoke_time_us IS NULL
    RETURNING *),
successor AS (INSERT INTO refresh_tokens
        (token_hash, grant_id, create_time_us, expire_time_us, use_time_us)
    SELECT md5(random()::text || :g) || md5(clock_timestamp()::text), grant_id, 1,
        4000000000000000, NULL FROM extended)
SELECT * FROM extended;
