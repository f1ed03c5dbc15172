//! The one table from domain errors to gRPC statuses. OAuth 2.0 error codes travel twice: as
//! `google.rpc.ErrorInfo.reason` (domain `tokend`) in the status details, and as the
//! `oauth2-error` metadata entry for tools that cannot decode details.

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::domain::Error;

/// `ErrorInfo.domain` of tokend's errors.
pub const ERROR_DOMAIN: &str = "tokend";
/// Metadata key carrying the OAuth 2.0 error code.
pub const OAUTH2_ERROR_KEY: &str = "oauth2-error";
/// Metadata key saying, in whole seconds, when a rate-limited call may be retried (as HTTP's
/// `Retry-After`); the same delay is in the `google.rpc.RetryInfo` detail.
pub const RETRY_AFTER_KEY: &str = "retry-after";

/// Converts a domain error into the status a client sees.
pub fn to_status(err: Error) -> Status {
    let code = match &err {
        Error::InvalidArgument { .. }
        | Error::InvalidScope(_)
        | Error::InvalidTarget(_)
        | Error::InvalidGrant(_) => Code::InvalidArgument,
        Error::InvalidClient | Error::Unauthenticated(_) => Code::Unauthenticated,
        Error::UnauthorizedClient(_) | Error::PermissionDenied(_) => Code::PermissionDenied,
        Error::NotFound(_) => Code::NotFound,
        Error::AlreadyExists(_) => Code::AlreadyExists,
        Error::Aborted(_) => Code::Aborted,
        Error::Unimplemented(_) => Code::Unimplemented,
        Error::RateLimited { .. } => Code::ResourceExhausted,
        Error::Unavailable(_) => Code::Unavailable,
        Error::Unexpected(_) => Code::Internal,
    };
    if let Error::Unexpected(inner) = &err {
        tracing::error!(error = format!("{inner:#}"), "internal error");
    }
    let mut details = ErrorDetails::new();
    if let Some(oauth2) = err.oauth2_code() {
        details.set_error_info(oauth2, ERROR_DOMAIN, std::collections::HashMap::new());
    }
    if let Error::InvalidArgument { field, message } = &err {
        details.add_bad_request_violation(field.clone(), message.clone());
    }
    let retry_after = match &err {
        Error::RateLimited { retry_after, .. } => {
            details.set_retry_info(Some(*retry_after));
            // Whole seconds, rounded up: a client that waits that long gets through.
            Some(retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0))
        }
        _ => None,
    };
    let message = match retry_after {
        Some(secs) => format!("{err}; retry in {secs} s"),
        None => err.to_string(),
    };
    let mut status = Status::with_error_details(code, message, details);
    if let Some(oauth2) = err.oauth2_code() {
        status
            .metadata_mut()
            .insert(OAUTH2_ERROR_KEY, MetadataValue::from_static(oauth2));
    }
    if let Some(secs) = retry_after {
        status
            .metadata_mut()
            .insert(RETRY_AFTER_KEY, MetadataValue::from(secs));
    }
    status
}

/// A malformed request caught during conversion, before the domain sees it.
pub fn invalid(field: &str, message: impl Into<String>) -> Status {
    to_status(Error::invalid(field, message))
}
