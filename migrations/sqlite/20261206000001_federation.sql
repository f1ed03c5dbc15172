-- Secretless clients, continued (issue 21): where a client publishes its own JWK Set
-- (`jwks_uri`; empty: nowhere) and the workload identities that may act as it
-- (`federated_credentials`: a JSON list of {"issuer", "subject"}).
ALTER TABLE clients ADD COLUMN jwks_uri TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN federated_credentials TEXT NOT NULL DEFAULT '[]';
