-- Successful client authentications per client, UTC day and method (`client_secret`,
-- `private_key_jwt`, `federated_jwt`, ...), added to in batches like `client_usage`.
CREATE TABLE client_usage_methods (
    client_id TEXT NOT NULL,
    day       BIGINT NOT NULL,
    method    TEXT NOT NULL,
    count     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (client_id, day, method)
);
CREATE INDEX client_usage_methods_day ON client_usage_methods (day);
