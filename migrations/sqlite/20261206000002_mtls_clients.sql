-- mTLS client authentication and certificate-bound tokens (RFC 8705): the one certificate
-- subject value a tls_client_auth client is bound to (empty: unset; at most one is set), and
-- whether its access tokens are bound to its certificate.
ALTER TABLE clients ADD COLUMN tls_client_auth_subject_dn TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN tls_client_auth_san_dns TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN tls_client_auth_san_uri TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN tls_client_auth_san_ip TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN tls_client_auth_san_email TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN tls_client_certificate_bound_access_tokens INTEGER NOT NULL DEFAULT 0;
-- The x5t#S256 of the certificate a refresh family's tokens are bound to (NULL: unbound):
-- every access token refreshed from it carries the same binding. Opaque access tokens carry
-- theirs in their stored claims (cnf).
ALTER TABLE grants ADD COLUMN cnf_x5t_s256 TEXT;
