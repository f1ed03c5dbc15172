//! Who is calling the token endpoint: the client_id it claims, the proof it presents for it,
//! and where the call came from. Every front end builds one [`ClientAuth`]; the gate
//! (`gate.rs`) checks the proof with the verifier of its kind and applies the client policy.
//!
//! A new way for a client to prove itself (a signed assertion, a certificate) is one more
//! [`Proof`] variant and one verifier in the gate, not a new field in every request.

use std::fmt;
use std::net::IpAddr;

use secrecy::SecretString;

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
#[derive(Debug)]
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
        let auth = ClientAuth::secret("c1", "tkd_cs_very-secret", None);
        let printed = format!("{auth:?}");
        assert!(printed.contains("c1"), "{printed}");
        assert!(!printed.contains("very-secret"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
    }
}
