//! How a client may authenticate at the token endpoint (RFC 7591 `token_endpoint_auth_method`
//! names, a list here: a client moving from a secret to a key lists both for a while). A client
//! authenticates only by a method it lists.

use std::collections::BTreeSet;

use crate::domain::error::{Error, Result};

/// One client authentication method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuthMethod {
    /// The secret in HTTP Basic (or the gRPC `client_secret` field).
    ClientSecretBasic,
    /// The secret in the form body (or the gRPC `client_secret` field).
    ClientSecretPost,
    /// An assertion signed with one of the client's own keys (`jwks` or `jwks_uri`, RFC 7523
    /// section 2.2).
    PrivateKeyJwt,
    /// The workload's own identity token from an issuer the operator trusts (a Kubernetes
    /// service-account token, a SPIFFE JWT-SVID), sent as the client assertion and matched
    /// to one of the client's `federated_credentials`. A tokend name: RFC 7591 has none.
    FederatedJwt,
    /// A TLS client certificate from the configured CA, carrying the client's one subject
    /// value (RFC 8705 section 2.1).
    TlsClientAuth,
    /// A TLS client certificate, self-signed or not, whose key is one of the client's `jwks`
    /// (RFC 8705 section 2.2).
    SelfSignedTlsClientAuth,
}

impl AuthMethod {
    /// Every implemented method.
    pub const ALL: [AuthMethod; 6] = [
        AuthMethod::ClientSecretBasic,
        AuthMethod::ClientSecretPost,
        AuthMethod::PrivateKeyJwt,
        AuthMethod::TlsClientAuth,
        AuthMethod::SelfSignedTlsClientAuth,
        AuthMethod::FederatedJwt,
    ];

    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::FederatedJwt => "federated_jwt",
            AuthMethod::TlsClientAuth => "tls_client_auth",
            AuthMethod::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }

    /// Whether the method proves the client with a secret tokend keeps a hash of.
    pub fn uses_secret(self) -> bool {
        matches!(
            self,
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
        )
    }

    fn parse(field: &str, raw: &str) -> Result<Self> {
        if let Some(method) = Self::ALL.into_iter().find(|m| m.as_str() == raw) {
            return Ok(method);
        }
        let known: Vec<&str> = Self::ALL.iter().map(|m| m.as_str()).collect();
        Err(Error::invalid(
            field,
            format!("unknown method {raw:?}; use {}", known.join(", ")),
        ))
    }
}

/// The methods a client lists; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthMethods(BTreeSet<AuthMethod>);

impl Default for AuthMethods {
    /// The two secret methods: what every client could do before methods were listed.
    fn default() -> Self {
        Self(BTreeSet::from([
            AuthMethod::ClientSecretBasic,
            AuthMethod::ClientSecretPost,
        ]))
    }
}

impl AuthMethods {
    /// Parses the listed names; none means the default (the two secret methods).
    pub fn parse(field: &str, raw: &[String]) -> Result<Self> {
        if raw.is_empty() {
            return Ok(Self::default());
        }
        raw.iter()
            .enumerate()
            .map(|(i, name)| AuthMethod::parse(&format!("{field}[{i}]"), name))
            .collect::<Result<BTreeSet<_>>>()
            .map(Self)
    }

    /// Whether the client may authenticate by `method`.
    pub fn allows(&self, method: AuthMethod) -> bool {
        self.0.contains(&method)
    }

    /// Whether a secret is one of the client's proofs (it then has one, else none at all).
    pub fn uses_secret(&self) -> bool {
        self.0.iter().any(|m| m.uses_secret())
    }

    /// The RFC 7591 names, in a stable order.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|m| m.as_str().to_owned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(raw: &[&str]) -> Vec<String> {
        raw.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn none_listed_means_the_two_secret_methods() {
        let methods = AuthMethods::parse("m", &[]).unwrap();
        assert_eq!(
            methods.names(),
            ["client_secret_basic", "client_secret_post"]
        );
        assert!(methods.uses_secret() && !methods.allows(AuthMethod::PrivateKeyJwt));
    }

    #[test]
    fn a_key_only_client_uses_no_secret() {
        let methods = AuthMethods::parse("m", &names(&["private_key_jwt"])).unwrap();
        assert!(!methods.uses_secret());
        assert!(methods.allows(AuthMethod::PrivateKeyJwt));
    }

    #[test]
    fn unknown_methods_are_refused_naming_the_entry() {
        let tls = names(&["tls_client_auth", "self_signed_tls_client_auth"]);
        let methods = AuthMethods::parse("m", &tls).unwrap();
        assert!(!methods.uses_secret() && methods.allows(AuthMethod::TlsClientAuth));
        let err = AuthMethods::parse("m", &names(&["password"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("m[0]:") && err.contains("unknown method"),
            "{err}"
        );
    }
}
