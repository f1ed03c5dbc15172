-- Token exchange (RFC 8693): the audiences a client may exchange other tokens for; empty means
-- the client may not exchange.
ALTER TABLE clients ADD COLUMN exchange_audiences JSONB NOT NULL DEFAULT '[]';
