-- What RefreshToken commits on Postgres (src/store/sql.rs rotate_refresh): claim the presented
-- token (a conditional UPDATE by primary key, with the same EXISTS join on grants and
-- clients), insert the successor, extend the family, read it back; one transaction.
-- The claim matches a seeded token that is never spent (use_time_us stays NULL: it sets
-- use_time_us = NULL), so every iteration does the same work as a first exchange.
\set g random(1, :families)
BEGIN;
UPDATE refresh_tokens SET use_time_us = NULL
    WHERE token_hash = 'seed-' || :g AND use_time_us IS NULL AND expire_time_us > 1
    AND EXISTS (SELECT 1 FROM grants g JOIN clients c ON c.client_id = g.client_id
        WHERE g.grant_id = refresh_tokens.grant_id AND g.client_id = 'pgbench-client'
        AND g.revoke_time_us IS NULL AND g.token_generation = c.token_generation)
    RETURNING grant_id;
INSERT INTO refresh_tokens (token_hash, grant_id, create_time_us, expire_time_us, use_time_us)
    VALUES (md5(random()::text || :g) || md5(clock_timestamp()::text), 'pgbench-grant-' || :g,
    1, 4000000000000000, NULL);
UPDATE grants SET
    access_expire_time_us = CASE WHEN access_expire_time_us > 5 THEN access_expire_time_us ELSE 5 END,
    refresh_expire_time_us = CASE WHEN refresh_expire_time_us > 6 THEN refresh_expire_time_us ELSE 6 END
    WHERE grant_id = 'pgbench-grant-' || :g AND revoke_time_us IS NULL;
SELECT * FROM grants WHERE grant_id = 'pgbench-grant-' || :g;
COMMIT;
