//! The one table from a domain error to everything a front end needs to answer it. The gRPC
//! status table (`grpc::error`), the HTTP/OAuth 2.0 one (`http::error`) and Envoy's denied
//! answers (`grpc::ext_authz`) only write what this decides.

use std::time::Duration;

use http::StatusCode;
use tonic::Code;

use crate::domain::Error;

/// How long a client should wait before retrying when the database is unavailable.
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(1);

/// How one domain error is presented on every front end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presentation {
    pub grpc: Code,
    pub http: StatusCode,
    /// The OAuth 2.0 error code (RFC 6749 section 5.2, RFC 6750 section 3.1, RFC 7009,
    /// RFC 8707, tokend's `rate_limited`).
    pub oauth2: Option<&'static str>,
    /// When the call may be retried (rate limits, lockouts, an unavailable database).
    pub retry_after: Option<Duration>,
    /// The `WWW-Authenticate` challenge of a 401 or 403 answer.
    pub challenge: Option<Challenge>,
}

/// An RFC 7235 challenge, as `WWW-Authenticate` carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP Basic client authentication failed or is missing (RFC 6749 section 5.2).
    Basic,
    /// RFC 6750 section 3: `error` is absent when the request carried no token at all;
    /// `scope` names what an `insufficient_scope` answer needs.
    Bearer {
        error: Option<&'static str>,
        scope: Option<String>,
    },
}

impl Challenge {
    /// The header value.
    pub fn header_value(&self) -> String {
        match self {
            Challenge::Basic => "Basic realm=\"tokend\", charset=\"UTF-8\"".into(),
            Challenge::Bearer { error, scope } => {
                let mut value = String::from("Bearer realm=\"tokend\"");
                if let Some(error) = error {
                    value.push_str(&format!(", error=\"{error}\""));
                }
                if let Some(scope) = scope.as_deref().filter(|s| !s.is_empty()) {
                    value.push_str(&format!(", scope=\"{scope}\""));
                }
                value
            }
        }
    }
}

impl Presentation {
    /// The presentation of `err`. An unexpected error (a bug, corrupt data) is logged here,
    /// once, with its cause; callers are shown only that it happened.
    pub fn of(err: &Error) -> Self {
        let (grpc, http) = codes(err);
        if let Error::Unexpected(inner) = err {
            tracing::error!(error = format!("{inner:#}"), "internal error");
        }
        let retry_after = match err {
            Error::RateLimited { retry_after, .. } => Some(*retry_after),
            Error::Unavailable(_) => Some(UNAVAILABLE_RETRY),
            _ => None,
        };
        let challenge = match err {
            Error::Unauthenticated(_) => Some(Challenge::Bearer {
                error: Some("invalid_token"),
                scope: None,
            }),
            Error::PermissionDenied(_) => Some(Challenge::Bearer {
                error: Some("insufficient_scope"),
                scope: None,
            }),
            _ => None,
        };
        Self {
            grpc,
            http,
            oauth2: err.oauth2_code(),
            retry_after,
            challenge,
        }
    }

    /// Over HTTP, a client that authenticated in the `Authorization` header (HTTP Basic) and
    /// failed gets 401 with a `Basic` challenge; in the body, 400 (RFC 6749 section 5.2).
    pub fn with_basic_auth(mut self, basic: bool) -> Self {
        if basic && self.oauth2 == Some("invalid_client") {
            self.http = StatusCode::UNAUTHORIZED;
            self.challenge = Some(Challenge::Basic);
        }
        self
    }

    /// The retry delay in whole seconds, rounded up: a client that waits that long gets
    /// through (HTTP `Retry-After`, gRPC `retry-after` metadata).
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after
            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
    }
}

/// The gRPC code and HTTP status of each error.
fn codes(err: &Error) -> (Code, StatusCode) {
    match err {
        Error::InvalidArgument { .. }
        | Error::InvalidScope(_)
        | Error::InvalidTarget(_)
        | Error::InvalidGrant(_)
        | Error::UnsupportedGrantType(_)
        | Error::UnsupportedTokenType(_) => (Code::InvalidArgument, StatusCode::BAD_REQUEST),
        // 400 over HTTP unless the client used the Authorization header (`with_basic_auth`).
        Error::InvalidClient => (Code::Unauthenticated, StatusCode::BAD_REQUEST),
        Error::Unauthenticated(_) => (Code::Unauthenticated, StatusCode::UNAUTHORIZED),
        // RFC 6749 section 5.2: `unauthorized_client` is a 400 answer.
        Error::UnauthorizedClient(_) => (Code::PermissionDenied, StatusCode::BAD_REQUEST),
        Error::PermissionDenied(_) => (Code::PermissionDenied, StatusCode::FORBIDDEN),
        Error::NotFound(_) => (Code::NotFound, StatusCode::NOT_FOUND),
        Error::AlreadyExists(_) => (Code::AlreadyExists, StatusCode::CONFLICT),
        Error::FailedPrecondition(_) => (Code::FailedPrecondition, StatusCode::CONFLICT),
        Error::Aborted(_) => (Code::Aborted, StatusCode::CONFLICT),
        Error::Unimplemented(_) => (Code::Unimplemented, StatusCode::NOT_IMPLEMENTED),
        Error::RateLimited { .. } => (Code::ResourceExhausted, StatusCode::TOO_MANY_REQUESTS),
        Error::Unavailable(_) => (Code::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
        Error::Unexpected(_) => (Code::Internal, StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// The RFC 6749 section 5.2 error body every HTTP answer (and Envoy's denied answer) carries.
pub fn error_body(code: &str, description: &str) -> serde_json::Value {
    serde_json::json!({ "error": code, "error_description": description })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_front_ends_get_retry_after_for_limits_and_outages() {
        let limited = Presentation::of(&Error::RateLimited {
            message: "slow down".into(),
            retry_after: Duration::from_millis(1500),
        });
        assert_eq!(
            (limited.grpc, limited.http),
            (Code::ResourceExhausted, StatusCode::TOO_MANY_REQUESTS)
        );
        assert_eq!(limited.retry_after_secs(), Some(2));
        let down = Presentation::of(&Error::Unavailable("x".into()));
        assert_eq!(
            (down.grpc, down.http, down.oauth2),
            (
                Code::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                Some("temporarily_unavailable")
            )
        );
        assert_eq!(down.retry_after_secs(), Some(1));
    }

    #[test]
    fn challenges() {
        let bad = Presentation::of(&Error::Unauthenticated("x".into()));
        assert_eq!(
            bad.challenge.unwrap().header_value(),
            "Bearer realm=\"tokend\", error=\"invalid_token\""
        );
        let scope = Challenge::Bearer {
            error: Some("insufficient_scope"),
            scope: Some("admin:all".into()),
        };
        assert_eq!(
            scope.header_value(),
            "Bearer realm=\"tokend\", error=\"insufficient_scope\", scope=\"admin:all\""
        );
        let none = Challenge::Bearer {
            error: None,
            scope: None,
        };
        assert_eq!(none.header_value(), "Bearer realm=\"tokend\"");
        let client = Presentation::of(&Error::InvalidClient);
        assert_eq!(client.http, StatusCode::BAD_REQUEST);
        let basic = client.with_basic_auth(true);
        assert_eq!(basic.http, StatusCode::UNAUTHORIZED);
        assert_eq!(basic.challenge, Some(Challenge::Basic));
    }
}
