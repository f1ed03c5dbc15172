//! Reading the caller's bearer token from `authorization` metadata.

use tonic::{Request, Status};

use super::error::{invalid, to_status};
use super::peer::client_address;
use crate::domain::{Caller, Error, Tokend};
use crate::transport::{authorization, bearer_token};

/// The bearer token, if the request carries one. Metadata that is not ASCII, or not of the
/// `Bearer <token>` form, is an error rather than "no token"; sent twice it is
/// INVALID_ARGUMENT (a malformed request, not a wrong credential a client might refresh).
pub fn bearer<T>(request: &Request<T>) -> Result<Option<&str>, Status> {
    let Some(value) = authorization(request.metadata().as_ref()).map_err(to_status)? else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| {
        invalid(
            "authorization",
            "metadata must be printable ASCII: `Bearer <token>`",
        )
    })?;
    match bearer_token(text) {
        Some(token) if !token.is_empty() => Ok(Some(token)),
        _ => Err(to_status(Error::Unauthenticated(
            "authorization metadata must be `Bearer <access token>`".into(),
        ))),
    }
}

/// The authenticated caller; UNAUTHENTICATED when there is no valid bearer token.
pub async fn caller<T>(
    tokend: &Tokend,
    request: &Request<T>,
    what: &str,
) -> Result<Caller, Status> {
    let token = bearer(request)?.ok_or_else(|| {
        to_status(Error::Unauthenticated(format!(
            "{what} needs `authorization: Bearer <access token>` metadata"
        )))
    })?;
    let mut caller = tokend
        .introspection
        .authenticate(token)
        .await
        .map_err(to_status)?;
    caller.address = client_address(&tokend.policy, request);
    Ok(caller)
}

/// The caller if a bearer token was sent (it must then be valid), else `None`.
pub async fn optional_caller<T>(
    tokend: &Tokend,
    request: &Request<T>,
) -> Result<Option<Caller>, Status> {
    match bearer(request)? {
        Some(token) => tokend
            .introspection
            .authenticate(token)
            .await
            .map(Some)
            .map_err(to_status),
        None => Ok(None),
    }
}
