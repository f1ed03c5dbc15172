//! The domain's error type. Every front end (gRPC now, HTTP later) maps it to its wire format in
//! one table; the variants carry OAuth 2.0 meaning where RFC 6749 gives one.

use crate::store::StoreError;

/// What went wrong, in terms a caller can act on. Messages are safe to show to callers: they
/// never contain secrets, tokens, hashes or SQL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed input. `field` names the offending field (proto field path).
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    /// Unknown client, wrong secret, refused client assertion, or a method the client does
    /// not list; deliberately indistinguishable (`invalid_client`).
    #[error(
        "client authentication failed: unknown client_id, wrong client_secret or refused \
         client_assertion"
    )]
    InvalidClient,
    /// The client exists but may not obtain tokens (`unauthorized_client`).
    #[error("{0}")]
    UnauthorizedClient(String),
    /// A requested scope is not allowed for the client (`invalid_scope`).
    #[error("{0}")]
    InvalidScope(String),
    /// A requested audience is not allowed for the client (`invalid_target`, RFC 8707).
    #[error("{0}")]
    InvalidTarget(String),
    /// A refresh token that cannot be exchanged: unknown, expired, spent, revoked or of
    /// another client (`invalid_grant`).
    #[error("{0}")]
    InvalidGrant(String),
    /// A `grant_type` tokend does not support (`unsupported_grant_type`).
    #[error("{0}")]
    UnsupportedGrantType(String),
    /// A revocation's `token_type_hint` names a type tokend never issues
    /// (`unsupported_token_type`, RFC 7009 section 2.2.1).
    #[error("{0}")]
    UnsupportedTokenType(String),
    /// The caller's bearer token is missing or not valid.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but not allowed to do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// No such object (or one the caller may not see).
    #[error("{0}")]
    NotFound(String),
    /// The object exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The object is not in a state that allows the call (a secret for a client that uses
    /// none); the message says what to change first.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A concurrent change won; the caller may retry.
    #[error("{0}")]
    Aborted(String),
    /// Not built yet.
    #[error("{0}")]
    Unimplemented(String),
    /// Too many calls (a rate limit) or too many failed authentications (a lockout): retry
    /// after `retry_after`. OAuth 2.0 defines no code for it; tokend says `rate_limited`.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: std::time::Duration,
    },
    /// A dependency (the database) is unavailable; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or corrupt data. The message shown to callers is generic.
    #[error("internal error")]
    Unexpected(#[source] anyhow::Error),
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The OAuth 2.0 error code (RFC 6749 section 5.2, RFC 8707) this error stands for, if any.
    pub fn oauth2_code(&self) -> Option<&'static str> {
        match self {
            Error::InvalidArgument { .. } => Some("invalid_request"),
            Error::InvalidClient => Some("invalid_client"),
            Error::UnauthorizedClient(_) => Some("unauthorized_client"),
            Error::InvalidScope(_) => Some("invalid_scope"),
            Error::InvalidTarget(_) => Some("invalid_target"),
            Error::InvalidGrant(_) => Some("invalid_grant"),
            Error::UnsupportedGrantType(_) => Some("unsupported_grant_type"),
            Error::UnsupportedTokenType(_) => Some("unsupported_token_type"),
            Error::Unauthenticated(_) => Some("invalid_token"),
            Error::PermissionDenied(_) => Some("insufficient_scope"),
            Error::RateLimited { .. } => Some("rate_limited"),
            Error::Unavailable(_) => Some("temporarily_unavailable"),
            Error::Unexpected(_) => Some("server_error"),
            _ => None,
        }
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::AlreadyExists => Error::AlreadyExists("the object exists already".into()),
            StoreError::NotFound => Error::NotFound("not found".into()),
            StoreError::Conflict => {
                Error::Aborted("a concurrent change won; read the object again and retry".into())
            }
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "database unavailable");
                Error::Unavailable("the database is unavailable; retry later".into())
            }
            // Logged once by the sync loop when the database went away, not per call.
            StoreError::Down(_) => {
                Error::Unavailable("the database is unavailable; retry later".into())
            }
            StoreError::InvalidUrl(msg) => Error::Unexpected(anyhow::anyhow!(msg)),
            StoreError::Unexpected(err) => Error::Unexpected(err),
        }
    }
}

/// Result of a domain call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
