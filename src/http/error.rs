//! The one table from domain errors to HTTP statuses and RFC 6749 section 5.2 error responses.
//! The OAuth 2.0 code comes from `Error::oauth2_code`, the same function the gRPC table uses,
//! so one domain error gives one code on every front end.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::domain::Error;

/// An error answer: status, RFC 6749 `error` and `error_description`, and the headers that go
/// with some of them.
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub code: &'static str,
    pub description: String,
    /// `WWW-Authenticate` value, for 401 answers.
    pub challenge: Option<&'static str>,
    /// `Retry-After` in seconds, for 429 and 503 answers.
    pub retry_after: Option<u64>,
}

impl OAuthError {
    /// A malformed request (`invalid_request`, 400).
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// An error with no special headers.
    pub fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            challenge: None,
            retry_after: None,
        }
    }

    /// The answer for a domain error. `basic` says the client authenticated with HTTP Basic:
    /// a failed client authentication is then 401 with a `Basic` challenge (RFC 6749 section
    /// 5.2), else 400.
    pub fn from_domain(err: Error, basic: bool) -> Self {
        let code = err.oauth2_code().unwrap_or("invalid_request");
        let (status, challenge) = match &err {
            Error::InvalidClient if basic => (
                StatusCode::UNAUTHORIZED,
                Some("Basic realm=\"tokend\", charset=\"UTF-8\""),
            ),
            Error::Unauthenticated(_) => (
                StatusCode::UNAUTHORIZED,
                Some("Bearer realm=\"tokend\", error=\"invalid_token\""),
            ),
            Error::PermissionDenied(_) => (StatusCode::FORBIDDEN, None),
            Error::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, None),
            Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, None),
            Error::Unexpected(inner) => {
                tracing::error!(error = format!("{inner:#}"), "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, None)
            }
            _ => (StatusCode::BAD_REQUEST, None),
        };
        let retry_after = match &err {
            Error::RateLimited { retry_after, .. } => {
                Some(retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0))
            }
            Error::Unavailable(_) => Some(1),
            _ => None,
        };
        Self {
            status,
            code,
            description: err.to_string(),
            challenge,
            retry_after,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": self.code,
            "error_description": self.description,
        });
        let mut response = json(self.status, &body);
        let headers = response.headers_mut();
        if let Some(challenge) = self.challenge {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A JSON answer that is never cached (RFC 6749 section 5.1 asks it of token responses).
pub fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (PRAGMA, HeaderValue::from_static("no-cache")),
    ];
    (status, headers, body.to_string()).into_response()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_table_gives_rfc_6749_statuses_and_codes() {
        let cases = [
            (Error::InvalidClient, true, 401, "invalid_client"),
            (Error::InvalidClient, false, 400, "invalid_client"),
            (Error::InvalidGrant("x".into()), false, 400, "invalid_grant"),
            (Error::InvalidScope("x".into()), false, 400, "invalid_scope"),
            (
                Error::InvalidTarget("x".into()),
                false,
                400,
                "invalid_target",
            ),
            (
                Error::UnauthorizedClient("x".into()),
                false,
                400,
                "unauthorized_client",
            ),
            (
                Error::invalid("scope", "bad"),
                false,
                400,
                "invalid_request",
            ),
            (
                Error::Unavailable("x".into()),
                false,
                503,
                "temporarily_unavailable",
            ),
        ];
        for (err, basic, status, code) in cases {
            let e = OAuthError::from_domain(err, basic);
            assert_eq!((e.status.as_u16(), e.code), (status, code));
        }
        let limited = OAuthError::from_domain(
            Error::RateLimited {
                message: "slow down".into(),
                retry_after: Duration::from_millis(1500),
            },
            false,
        );
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            (limited.code, limited.retry_after),
            ("rate_limited", Some(2))
        );
        let basic = OAuthError::from_domain(Error::InvalidClient, true);
        assert!(basic.challenge.unwrap().starts_with("Basic"));
    }
}
