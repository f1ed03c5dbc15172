-- A client's own limit on refresh-token grants a minute (0: none), apart from
-- rate_limit_per_minute, which then counts the other grants only.
ALTER TABLE clients ADD COLUMN refresh_rate_limit_per_minute BIGINT NOT NULL DEFAULT 0;
