//! Who is calling the token endpoint: the client_id it claims, the proof it presents for it,
//! and where the call came from. Every front end builds one [`ClientAuth`]; the gate
//! (`gate.rs`) checks the proof with the verifier of its kind and applies the client policy.
//!
//! A new way for a client to prove itself (a signed assertion, a certificate) is one more
//! [`Proof`] variant and one verifier in the gate, not a new field in every request.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretString};

use super::grant::GrantType;
use crate::domain::clients::ClientCertificate;
use crate::domain::error::{Error, Result};
use crate::domain::ids::ClientId;

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 section 2.2).
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest client assertion looked at: a longer one is refused before it is parsed.
pub const MAX_ASSERTION_LEN: usize = 8 * 1024;

/// What a client presents to prove it is the client it names. `Debug` never prints it.
pub enum Proof {
    /// A client secret (`client_secret_basic` / `client_secret_post`, or the gRPC
    /// `client_secret` field), as presented; possibly empty or malformed (the gate refuses
    /// such a one as `invalid_client` without any hash work).
    Secret(SecretString),
    /// A JWT signed with one of the client's own keys (`private_key_jwt`, RFC 7523 section
    /// 2.2), as presented, not yet parsed. Single-use, but a bearer credential until used.
    Assertion(SecretString),
    /// The TLS client certificate of the call (RFC 8705 `tls_client_auth` or
    /// `self_signed_tls_client_auth`: which one is the client's to say), when the client sent
    /// no secret and no assertion. Its private key was proven in the TLS handshake, tokend's
    /// own or the trusted proxy's.
    Certificate(Arc<ClientCertificate>),
}

impl Proof {
    /// A presented client secret.
    pub fn secret(raw: impl Into<String>) -> Self {
        Proof::Secret(SecretString::from(raw.into()))
    }

    /// A presented client assertion.
    pub fn assertion(raw: impl Into<String>) -> Self {
        Proof::Assertion(SecretString::from(raw.into()))
    }

    /// What kind of proof it is, before it is verified (`secret`, `assertion`, `certificate`): a failure's
    /// metric label. (Which method an assertion proves, `private_key_jwt` or `federated_jwt`,
    /// is known only once its verifier has read it.)
    pub fn kind(&self) -> &'static str {
        match self {
            Proof::Secret(_) => "secret",
            Proof::Assertion(_) => "assertion",
            Proof::Certificate(_) => "certificate",
        }
    }

    /// The method's name in RFC 7591 / RFC 8414 terms, for logs and the audit trail.
    pub fn method(&self) -> &'static str {
        match self {
            Proof::Secret(_) => "client_secret",
            Proof::Assertion(_) => "private_key_jwt",
            // Either RFC 8705 method: the certificate alone does not say which.
            Proof::Certificate(_) => "tls_client_auth",
        }
    }
}

/// The client credentials of a request as its front end found them, before the one rule of
/// which proof they make ([`ClientAuth::presented`]). Absent and empty are the same.
#[derive(Default)]
pub struct Presented {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub assertion_type: Option<String>,
    pub assertion: Option<String>,
    /// The TLS client certificate of the connection (or the one a trusted proxy forwarded).
    pub certificate: Option<Arc<ClientCertificate>>,
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
    /// The TLS client certificate the call came with, whatever the proof: the proof itself,
    /// or, beside a secret or an assertion, what certificate-bound tokens are bound to.
    pub certificate: Option<Arc<ClientCertificate>>,
}

impl ClientAuth {
    /// The proof a request's credentials make, the same for every front end: a secret, or a
    /// JWT assertion with its `client_assertion_type`. Both at once, an assertion without
    /// its type (or the reverse) or an unknown type is `invalid_request`. An assertion
    /// without a client_id names its client by its own `sub` (checked like any other claim).
    /// With neither, the TLS client certificate is the proof (RFC 8705); with one of them,
    /// the certificate is kept beside it, for certificate-bound tokens.
    pub fn presented(credentials: Presented, address: Option<IpAddr>) -> Result<Self> {
        let secret = given(credentials.client_secret);
        let assertion = assertion_of(
            given(credentials.assertion_type),
            given(credentials.assertion),
        )?;
        let certificate = credentials.certificate;
        let who = match (secret, assertion, &certificate) {
            (Some(_), Some(_), _) => {
                return Err(Error::invalid(
                    "client_assertion",
                    "use one client authentication method: a client secret or a client \
                     assertion, not both",
                ));
            }
            (_, Some(assertion), _) => Self::assertion(credentials.client_id, assertion, address),
            (None, None, Some(cert)) => Self {
                client_id: credentials.client_id,
                proof: Proof::Certificate(cert.clone()),
                address,
                certificate: None,
            },
            (secret, None, _) => {
                Self::secret(credentials.client_id, secret.unwrap_or_default(), address)
            }
        };
        Ok(who.with_certificate(certificate))
    }

    /// The same caller, with the TLS client certificate its call came with.
    pub fn with_certificate(mut self, certificate: Option<Arc<ClientCertificate>>) -> Self {
        self.certificate = certificate;
        self
    }

    /// A client authenticating with a signed assertion. An empty `client_id` is taken from
    /// the assertion's `sub`, unverified: the verifier then checks the assertion against that
    /// client's keys as against any other's.
    pub fn assertion(
        client_id: impl Into<String>,
        assertion: impl Into<String>,
        address: Option<IpAddr>,
    ) -> Self {
        let proof = Proof::assertion(assertion);
        let mut client_id = client_id.into();
        if client_id.is_empty()
            && let Proof::Assertion(text) = &proof
        {
            client_id = claimed_subject(text.expose_secret()).unwrap_or_default();
        }
        Self {
            client_id,
            proof,
            address,
            certificate: None,
        }
    }

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
            certificate: None,
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
            .field("certificate", &self.certificate)
            .finish()
    }
}

/// A credential field as sent: absent and empty are the same.
fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// The assertion of a request: none, or one with the one `client_assertion_type` tokend
/// knows; anything else is `invalid_request` naming the field to fix.
fn assertion_of(kind: Option<String>, assertion: Option<String>) -> Result<Option<String>> {
    match (kind.as_deref(), assertion) {
        (None, None) => Ok(None),
        (Some(JWT_BEARER_ASSERTION), Some(assertion)) => Ok(Some(assertion)),
        (Some(JWT_BEARER_ASSERTION), None) => Err(Error::invalid(
            "client_assertion",
            "is required with client_assertion_type",
        )),
        (None, Some(_)) => Err(Error::invalid(
            "client_assertion_type",
            format!("is required with client_assertion: {JWT_BEARER_ASSERTION}"),
        )),
        (Some(other), _) => Err(Error::invalid(
            "client_assertion_type",
            format!("{other:?} is not supported; use {JWT_BEARER_ASSERTION}"),
        )),
    }
}

/// The `sub` an assertion claims, read without verifying anything (the verifier does), from
/// an assertion no longer than [`MAX_ASSERTION_LEN`].
fn claimed_subject(assertion: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Subject {
        sub: Option<String>,
    }
    if assertion.len() > MAX_ASSERTION_LEN {
        return None;
    }
    jsonwebtoken::dangerous::insecure_decode_claims::<Subject>(assertion)
        .ok()
        .and_then(|claims| claims.sub)
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
/// (IssueToken, RefreshToken, token exchange) only, each grant type against the client's limit
/// for it; a disabled client may still revoke its tokens, but neither get new ones nor
/// introspect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token(GrantType),
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

    fn presented(secret: &str, kind: &str, assertion: &str) -> Result<ClientAuth> {
        let some = |v: &str| Some(v.to_owned());
        ClientAuth::presented(
            Presented {
                client_id: "c".into(),
                client_secret: some(secret),
                assertion_type: some(kind),
                assertion: some(assertion),
                certificate: None,
            },
            None,
        )
    }

    #[test]
    fn credentials_make_one_proof_or_a_clear_refusal() {
        let secret = presented("s", "", "").unwrap();
        assert!(matches!(secret.proof, Proof::Secret(_)));
        let assertion = presented("", JWT_BEARER_ASSERTION, "a.b.c").unwrap();
        assert!(matches!(assertion.proof, Proof::Assertion(_)));
        assert!(format!("{assertion:?}").contains("private_key_jwt([redacted])"));
        let field = |r: Result<ClientAuth>| match r {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("expected invalid_request, got {other:?}"),
        };
        assert_eq!(
            field(presented("s", JWT_BEARER_ASSERTION, "a.b.c")),
            "client_assertion"
        );
        assert_eq!(field(presented("", "", "a.b.c")), "client_assertion_type");
        assert_eq!(
            field(presented("", JWT_BEARER_ASSERTION, "")),
            "client_assertion"
        );
        assert_eq!(
            field(presented("", "urn:x:saml2", "a.b.c")),
            "client_assertion_type"
        );
        // Nothing at all is an empty secret: refused by the gate as invalid_client.
        assert!(matches!(
            presented("", "", "").unwrap().proof,
            Proof::Secret(_)
        ));
    }

    #[test]
    fn a_certificate_is_the_proof_only_without_a_secret_or_an_assertion() {
        use crate::domain::clients::CertificateSource;
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["w.example".to_owned()]).unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let cert = ClientCertificate::from_der(&der, CertificateSource::Handshake).unwrap();
        let cert = Some(Arc::new(cert));
        let with = |secret: &str, assertion: &str| {
            let some = |v: &str| Some(v.to_owned());
            let kind = if assertion.is_empty() {
                ""
            } else {
                JWT_BEARER_ASSERTION
            };
            ClientAuth::presented(
                Presented {
                    client_id: "c".into(),
                    client_secret: some(secret),
                    assertion_type: some(kind),
                    assertion: some(assertion),
                    certificate: cert.clone(),
                },
                None,
            )
            .unwrap()
        };
        let alone = with("", "");
        assert!(matches!(alone.proof, Proof::Certificate(_)));
        for who in [with("s", ""), with("", "a.b.c")] {
            assert!(!matches!(who.proof, Proof::Certificate(_)), "{who:?}");
            assert_eq!(who.certificate, cert, "kept beside the proof, for binding");
        }
    }

    #[test]
    fn an_assertion_without_client_id_names_its_client_by_sub() {
        use base64::Engine as _;
        let part = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let jwt = format!(
            "{}.{}.sig",
            part(r#"{"alg":"EdDSA"}"#),
            part(r#"{"sub":"me"}"#)
        );
        assert_eq!(
            ClientAuth::assertion("", jwt.as_str(), None).client_id,
            "me"
        );
        assert_eq!(
            ClientAuth::assertion("given", jwt.as_str(), None).client_id,
            "given"
        );
        assert_eq!(ClientAuth::assertion("", "junk", None).client_id, "");
    }

    #[test]
    fn a_client_id_that_cannot_be_one_is_never_shown() {
        let forged = "x\n2026-01-01T00:00:00Z  INFO tokend::audit: \x1b[31mtkd_cs_secret";
        let auth = ClientAuth::secret(forged, "s", None);
        assert_eq!(auth.logged_id().to_string(), "(malformed)");
        assert!(!format!("{auth:?}").contains("tkd_cs_secret"));
    }
}
