//! Domain errors as gRPC statuses, written as `transport::Presentation` decides. OAuth 2.0 error codes travel twice: as
//! `google.rpc.ErrorInfo.reason` (domain `tokend`) in the status details, and as the
//! `oauth2-error` metadata entry for tools that cannot decode details.

use tonic::Status;
use tonic::metadata::MetadataValue;
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::domain::Error;
use crate::transport::Presentation;

/// `ErrorInfo.domain` of tokend's errors.
pub const ERROR_DOMAIN: &str = "tokend";
/// Metadata key carrying the OAuth 2.0 error code.
pub const OAUTH2_ERROR_KEY: &str = "oauth2-error";
/// Metadata key saying, in whole seconds, when a rate-limited call, or one that found the
/// database unavailable, may be retried (as HTTP's `Retry-After`); the same delay is in the
/// `google.rpc.RetryInfo` detail.
pub const RETRY_AFTER_KEY: &str = "retry-after";

/// Converts a domain error into the status a client sees, as `transport::Presentation`
/// decides (code, OAuth 2.0 code, retry delay).
pub fn to_status(err: Error) -> Status {
    let shown = Presentation::of(&err);
    let mut details = ErrorDetails::new();
    if let Some(oauth2) = shown.oauth2 {
        details.set_error_info(oauth2, ERROR_DOMAIN, std::collections::HashMap::new());
    }
    if let Error::InvalidArgument { field, message } = &err {
        details.add_bad_request_violation(field.clone(), message.clone());
    }
    if let Some(retry_after) = shown.retry_after {
        details.set_retry_info(Some(retry_after));
    }
    let message = match shown.retry_after_secs() {
        Some(secs) => format!("{err}; retry in {secs} s"),
        None => err.to_string(),
    };
    let mut status = Status::with_error_details(shown.grpc, message, details);
    if let Some(oauth2) = shown.oauth2 {
        status
            .metadata_mut()
            .insert(OAUTH2_ERROR_KEY, MetadataValue::from_static(oauth2));
    }
    if let Some(secs) = shown.retry_after_secs() {
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
