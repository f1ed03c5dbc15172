-- Where each client has authenticated from: while failed authentications lock an address, a
-- client that authenticated from it before keeps working there (the lock stops guessing, not
-- honest callers that share the address). One row per client and address (an IPv4 address or
-- an IPv6 /64), trusted until `until_us`; every replica hears of a new one through the change
-- log and loads the live ones at start.
CREATE TABLE trusted_addresses (
    client_id TEXT   NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    address   TEXT   NOT NULL,
    until_us  BIGINT NOT NULL,
    PRIMARY KEY (client_id, address)
);
CREATE INDEX trusted_addresses_until ON trusted_addresses (until_us);
