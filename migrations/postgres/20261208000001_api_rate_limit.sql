-- A client's quota of API calls a minute through the edge (ext_authz Check; 0: none), and
-- the API calls each client made through the edge per day: allowed, and refused over a
-- quota (HTTP 429).
ALTER TABLE clients ADD COLUMN api_rate_limit_per_minute BIGINT NOT NULL DEFAULT 0;
ALTER TABLE client_usage ADD COLUMN api_calls_allowed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE client_usage ADD COLUMN api_calls_throttled BIGINT NOT NULL DEFAULT 0;
