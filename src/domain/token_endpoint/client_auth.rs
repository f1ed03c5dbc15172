//! Who is calling the token endpoint: the client_id it claims, the proof it presents for it,
//! and where the call came from. Every front end builds one [`ClientAuth`]; the gate
//! (`gate.rs`) checks the proof with the verifier of its kind and applies the client policy.
//!
//! A new way for a client to prove itself (a signed assertion, a certificate) is one more
//! [`Proof`] variant and one verifier in the gate, not a new field in every request.

use std::fmt;
use std::net::IpAddr;

use secrecy::SecretString;

use crate::domain::ids::ClientId;

/// What a client presents to prove it is the client it names. `Debug` never prints it.
pub enum Proof {
    /// A client secret (`client_secret_basic` / `client_secret_post`, or the gRPC
    /// `client_secret` field), as presented; possibly empty or malformed (the gate refuses
    /// such a one as `invalid_client` without any hash work).
    Secret(SecretString),
}

impl Proof {
    /// A presented client secret.
    pub fn secret(raw: impl Into<String>) -> Self {
        Proof::Secret(SecretString::from(raw.into()))
    }

    /// The method's name in RFC 7591 / RFC 8414 terms, for logs and the audit trail.
    pub fn method(&self) -> &'static str {
        match self {
            Proof::Secret(_) => "client_secret",
        }
    }
}

impl fmt::Debug for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proof::{}([redacted])", self.method())
    }
}

/// A client authenticating at the token endpoint (or, over HTTP, a resource server
/// authenticating to introspect): the claimed client_id, its proof, its source address.
/// `Debug` shows neither the proof nor a client_id that cannot be one.
pub struct ClientAuth {
    /// As presented; not yet parsed (a malformed one is refused like a wrong secret).
    pub client_id: String,
    pub proof: Proof,
    /// Where the request came from, as the front end determined it (`None`: unknown).
    pub address: Option<IpAddr>,
}

impl ClientAuth {
    /// A client authenticating with a secret.
    pub fn secret(
        client_id: impl Into<String>,
        secret: impl Into<String>,
        address: Option<IpAddr>,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            proof: Proof::secret(secret),
            address,
        }
    }
}

impl ClientAuth {
    /// The client_id as a span or log line may show it: the parsed id, or `(malformed)` for
    /// text that cannot be one. Never the text as sent: that is the caller's, and may hold a
    /// line break and a forged log line, terminal escapes, or a secret pasted in the wrong
    /// field. (Such a client_id is refused as `invalid_client` by the gate.)
    pub fn logged_id(&self) -> LoggedClientId {
        LoggedClientId(ClientId::parse("client_id", &self.client_id).ok())
    }
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuth")
            .field("client_id", &format_args!("{}", self.logged_id()))
            .field("proof", &self.proof)
            .field("address", &self.address)
            .finish()
    }
}

/// A presented client_id, fit for logs (see [`ClientAuth::logged_id`]).
pub struct LoggedClientId(Option<ClientId>);

impl fmt::Display for LoggedClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(id) => fmt::Display::fmt(id, f),
            None => f.write_str("(malformed)"),
        }
    }
}

/// Which endpoint a client authenticates at: the rate limits count `Token` calls
/// (IssueToken, RefreshToken, token exchange) only; a disabled client may still revoke its
/// tokens, but neither get new ones nor introspect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Revocation,
    /// Introspection by a resource server that authenticates with its own credentials
    /// (RFC 7662 section 2.1, over HTTP).
    Introspection,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_proof() {
        let id = "0190a8e2-3c4d-7e5f-8a9b-0c1d2e3f4a5b";
        let auth = ClientAuth::secret(id, "tkd_cs_very-secret", None);
        let printed = format!("{auth:?}");
        assert!(printed.contains(id), "{printed}");
        assert!(!printed.contains("very-secret"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
    }

    #[test]
    fn a_client_id_that_cannot_be_one_is_never_shown() {
        let forged = "x\n2026-01-01T00:00:00Z  INFO tokend::audit: \x1b[31mtkd_cs_secret";
        let auth = ClientAuth::secret(forged, "s", None);
        assert_eq!(auth.logged_id().to_string(), "(malformed)");
        assert!(!format!("{auth:?}").contains("tkd_cs_secret"));
    }
}
