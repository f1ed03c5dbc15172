//! Reading an `application/x-www-form-urlencoded` OAuth 2.0 request (RFC 6749 appendix B) and
//! its client authentication (section 2.3.1): size limit, content type, parameters sent twice,
//! HTTP Basic with form-urlencoded id and secret.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::error::OAuthError;
use crate::domain::{ClientAuth, ClientCertificate, Presented};
use crate::transport::{Challenge, authorization};

/// Largest request body read; a bigger one is 413.
pub const MAX_BODY: usize = 16 * 1024;

/// Parameters that may be repeated: RFC 8707 `resource` and RFC 8693 `audience`.
const REPEATABLE: [&str; 2] = ["resource", "audience"];

/// A form's parameters. Each appears at most once, except the repeatable ones; a parameter
/// sent without a value counts as absent (RFC 6749 section 3.1).
#[derive(Debug, Default)]
pub struct Form {
    values: BTreeMap<String, Vec<String>>,
}

impl Form {
    /// Reads and parses the body of a form POST.
    pub async fn read(headers: &HeaderMap, body: Body) -> Result<Self, OAuthError> {
        let form = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded (RFC 6749 appendix B)",
            ));
        }
        let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
            OAuthError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                format!("the request body is larger than {} KiB", MAX_BODY / 1024),
            )
        })?;
        Self::parse(&bytes)
    }

    /// Parses a form body.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, value) in form_urlencoded::parse(body) {
            if value.is_empty() {
                continue;
            }
            let seen = values.entry(key.clone().into_owned()).or_default();
            if !seen.is_empty() && !REPEATABLE.contains(&key.as_ref()) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {key} is sent more than once (RFC 6749 section 3.2)"
                )));
            }
            seen.push(value.into_owned());
        }
        Ok(Self { values })
    }

    /// A single parameter, if sent.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    /// A required parameter.
    pub fn require(&self, key: &str) -> Result<&str, OAuthError> {
        self.get(key)
            .ok_or_else(|| OAuthError::invalid_request(format!("parameter {key} is required")))
    }

    /// The space-delimited `scope` parameter (RFC 6749 section 3.3), as a list.
    pub fn scopes(&self) -> Vec<String> {
        self.get("scope")
            .map(|s| {
                s.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every value of a repeatable parameter.
    pub fn all(&self, key: &str) -> &[String] {
        self.values.get(key).map_or(&[], Vec::as_slice)
    }
}

/// The client credentials a request carried, before the domain's rule of which proof they
/// make ([`ClientAuth::presented`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: Option<String>,
    /// `client_assertion_type` and `client_assertion` (RFC 7521 section 4.2).
    pub assertion_type: Option<String>,
    pub assertion: Option<String>,
    /// `client_secret_basic` (else `client_secret_post`, or an assertion).
    pub basic: bool,
}

impl ClientCredentials {
    /// The domain's view of the caller: this client_id, proven by this secret or assertion
    /// (or else by the TLS client `certificate`), from `address`; `invalid_request` for
    /// credentials that make no one proof.
    pub fn into_client_auth(
        self,
        address: Option<std::net::IpAddr>,
        certificate: Option<Arc<ClientCertificate>>,
    ) -> Result<ClientAuth, OAuthError> {
        let basic = self.basic;
        let presented = Presented {
            client_id: self.client_id,
            client_secret: self.client_secret,
            assertion_type: self.assertion_type,
            assertion: self.assertion,
            certificate,
        };
        ClientAuth::presented(presented, address).map_err(|e| OAuthError::from_domain(e, basic))
    }
}

/// The client's credentials: HTTP Basic (`client_secret_basic`, id and secret form-urlencoded
/// inside, as section 2.3.1 requires), `client_id` and `client_secret` in the body
/// (`client_secret_post`), or `client_assertion_type` and `client_assertion` in the body
/// (`private_key_jwt`, RFC 7523; `client_id` optional), or over mTLS `client_id` alone
/// (`tls_client_auth`, `self_signed_tls_client_auth`, RFC 8705: `certificate` says the call
/// has one). Two methods at once, or two Authorization headers, is `invalid_request`.
pub fn client_credentials(
    headers: &HeaderMap,
    form: &Form,
    certificate: bool,
) -> Result<ClientCredentials, OAuthError> {
    let basic = match authorization(headers).map_err(|e| OAuthError::from_domain(e, false))? {
        Some(value) => Some(basic(value.as_bytes())?),
        None => None,
    };
    let posted = form.get("client_secret");
    let assertion_type = form.get("client_assertion_type").map(str::to_owned);
    let assertion = form.get("client_assertion").map(str::to_owned);
    let asserted = assertion_type.is_some() || assertion.is_some();
    let credentials = |client_id: String, secret: Option<&str>, basic: bool| ClientCredentials {
        client_id,
        client_secret: secret.map(str::to_owned),
        assertion_type: assertion_type.clone(),
        assertion: assertion.clone(),
        basic,
    };
    match (basic, posted) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "use one client authentication method: HTTP Basic or client_secret in the body, not both",
        )),
        (Some((client_id, client_secret)), None) => {
            if form.get("client_id").is_some_and(|id| id != client_id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the one in the Authorization header",
                ));
            }
            Ok(credentials(client_id, Some(&client_secret), true))
        }
        (None, Some(secret)) => Ok(credentials(
            form.require("client_id")?.to_owned(),
            Some(secret),
            false,
        )),
        (None, None) if asserted => Ok(credentials(
            form.get("client_id").unwrap_or_default().to_owned(),
            None,
            false,
        )),
        (None, None) if certificate && form.get("client_id").is_some() => Ok(credentials(
            form.require("client_id")?.to_owned(),
            None,
            false,
        )),
        (None, None) => Err(OAuthError {
            challenge: Some(Challenge::Basic),
            ..OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication is required: HTTP Basic, client_id and client_secret in \
                 the body, client_assertion_type and client_assertion (RFC 7523), or client_id \
                 over mTLS (RFC 8705)",
            )
        }),
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`.
fn basic(value: &[u8]) -> Result<(String, String), OAuthError> {
    let malformed = || {
        OAuthError::invalid_request(
            "the Authorization header must be `Basic base64(client_id:client_secret)`",
        )
    };
    let text = std::str::from_utf8(value).map_err(|_| malformed())?;
    let (scheme, encoded) = text.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let pair = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = pair.split_once(':').ok_or_else(malformed)?;
    let unescape = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok((unescape(id), unescape(secret)))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use axum::http::header::AUTHORIZATION;

    use super::*;

    #[test]
    fn repeated_parameters_are_refused_except_resource_and_audience() {
        let form =
            Form::parse(b"grant_type=client_credentials&scope=a+b&resource=x&resource=y").unwrap();
        assert_eq!(form.get("scope"), Some("a b"));
        assert_eq!(form.all("resource"), ["x", "y"]);
        let err = Form::parse(b"scope=a&scope=b").unwrap_err();
        assert!(err.description.contains("scope"), "{err:?}");
        // Empty values count as absent.
        assert_eq!(Form::parse(b"scope=&x=1").unwrap().get("scope"), None);
    }

    #[test]
    fn basic_credentials_are_form_urlencoded_inside() {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode("my%20id:s%3Acret+x");
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        let creds = client_credentials(&headers, &Form::default(), false).unwrap();
        assert_eq!(creds.client_id, "my id");
        assert_eq!(creds.client_secret.as_deref(), Some("s:cret x"));
        assert!(creds.basic);
        let both = Form::parse(b"client_secret=x").unwrap();
        assert_eq!(
            client_credentials(&headers, &both, false).unwrap_err().code,
            "invalid_request"
        );
        let none = client_credentials(&HeaderMap::new(), &Form::default(), false).unwrap_err();
        assert_eq!((none.status.as_u16(), none.code), (401, "invalid_client"));
        let posted = Form::parse(b"client_id=a&client_secret=b").unwrap();
        let creds = client_credentials(&HeaderMap::new(), &posted, false).unwrap();
        assert_eq!((creds.client_id.as_str(), creds.basic), ("a", false));
        let asserted =
            Form::parse(b"client_assertion_type=urn%3Ax&client_assertion=a.b.c").unwrap();
        let creds = client_credentials(&HeaderMap::new(), &asserted, false).unwrap();
        assert_eq!(
            (creds.client_id.as_str(), creds.assertion.as_deref()),
            ("", Some("a.b.c"))
        );
        let err = creds.into_client_auth(None, None).unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (400, "invalid_request"));
        assert!(err.description.contains("client_assertion_type"), "{err:?}");
        let mixed = client_credentials(&headers, &asserted, false).unwrap();
        let err = mixed.into_client_auth(None, None).unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (400, "invalid_request"));
        headers.append(AUTHORIZATION, HeaderValue::from_static("Basic eDp5"));
        let twice = client_credentials(&headers, &Form::default(), false).unwrap_err();
        assert_eq!(
            (twice.status.as_u16(), twice.code),
            (400, "invalid_request")
        );
    }
}
