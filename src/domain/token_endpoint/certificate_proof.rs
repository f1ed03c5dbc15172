//! The verifier of TLS client certificates (`Proof::Certificate`, RFC 8705 section 2): the
//! client sent only its client_id; the certificate of the call proves it when the client
//! lists
//! - `tls_client_auth` and the certificate chains to the configured CA (the handshake
//!   checked it, or for a forwarded one `server.tls.client_ca_file` or the trusted proxy) and
//!   carries the one subject value the client is bound to; or
//! - `self_signed_tls_client_auth` and the certificate's public key is one of its `jwks`.
//!
//! Every refusal is the same `invalid_client` as a wrong secret; which check failed goes to a
//! debug log line only. A refusal costs no hashing and no write: a lookup of the client and,
//! for a forwarded certificate with a CA configured, one chain verification.

use std::sync::Arc;

use super::service::TokenEndpoint;
use crate::domain::clients::{AuthMethod, Client, ClientCertificate};
use crate::domain::error::{Error, Result};

impl TokenEndpoint {
    /// The verifier of `Proof::Certificate`. The client comes from the replica's view (the
    /// store only for one the view does not know yet).
    pub(super) async fn verify_certificate(
        &self,
        client_id: &str,
        cert: &ClientCertificate,
    ) -> Result<(Arc<Client>, AuthMethod)> {
        let refused = |why: &'static str| {
            tracing::debug!(reason = why, "client certificate refused");
            Error::InvalidClient
        };
        let client = self.claimed_client(client_id).await.map_err(|e| match e {
            Error::InvalidClient => refused("unknown or malformed client_id"),
            other => other,
        })?;
        match self.certificate_fits(&client, cert) {
            Ok(method) => Ok((client, method)),
            Err(why) => Err(refused(why)),
        }
    }

    /// Which of the two methods it may list `cert` proves `client` by; else why it does not.
    fn certificate_fits(
        &self,
        client: &Client,
        cert: &ClientCertificate,
    ) -> Result<AuthMethod, &'static str> {
        let spec = &client.spec;
        let by_subject = spec.auth_methods.allows(AuthMethod::TlsClientAuth);
        let by_key = spec
            .auth_methods
            .allows(AuthMethod::SelfSignedTlsClientAuth);
        if !by_subject && !by_key {
            return Err("the client lists neither tls_client_auth nor self_signed_tls_client_auth");
        }
        if by_key
            && let (Some(jwks), Some(key)) = (&spec.jwks, cert.key())
            && jwks.contains(key)
        {
            return Ok(AuthMethod::SelfSignedTlsClientAuth);
        }
        if !by_subject {
            return Err("the certificate's key is none of the client's jwks");
        }
        let binding = spec
            .tls_subject
            .binding()
            .ok_or("no subject value to match")?;
        if !binding.matches(cert) {
            return Err("the certificate does not carry the client's subject value");
        }
        if !cert.chain_trusted(self.client_ca.as_deref()) {
            return Err("the forwarded certificate does not chain to server.tls.client_ca_file");
        }
        Ok(AuthMethod::TlsClientAuth)
    }
}
