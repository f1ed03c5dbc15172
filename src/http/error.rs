//! Domain errors as HTTP statuses and RFC 6749 section 5.2 error responses, written as
//! `transport::Presentation` decides, the same table the gRPC front end writes from.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::domain::Error;
use crate::transport::{Challenge, Presentation, error_body};

/// An error answer: status, RFC 6749 `error` and `error_description`, and the headers that go
/// with some of them.
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub code: &'static str,
    pub description: String,
    /// `WWW-Authenticate`, for 401 and 403 answers.
    pub challenge: Option<Challenge>,
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

    /// The answer for a domain error, as `transport::Presentation` decides. `basic` says the
    /// client authenticated with HTTP Basic: a failed client authentication is then 401 with
    /// a `Basic` challenge (RFC 6749 section 5.2), else 400.
    pub fn from_domain(err: Error, basic: bool) -> Self {
        let shown = Presentation::of(&err).with_basic_auth(basic);
        Self {
            status: shown.http,
            code: shown.oauth2.unwrap_or("invalid_request"),
            description: err.to_string(),
            retry_after: shown.retry_after_secs(),
            challenge: shown.challenge,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = json(self.status, &error_body(self.code, &self.description));
        let headers = response.headers_mut();
        if let Some(value) = self
            .challenge
            .and_then(|c| HeaderValue::from_str(&c.header_value()).ok())
        {
            headers.insert(WWW_AUTHENTICATE, value);
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
        assert_eq!(limited.retry_after, Some(2));
        let basic = OAuthError::from_domain(Error::InvalidClient, true);
        assert_eq!(basic.challenge, Some(Challenge::Basic));
        let down = OAuthError::from_domain(Error::Unavailable("x".into()), false);
        assert_eq!(down.retry_after, Some(1));
    }
}
