//! `POST /oauth2/revoke` (RFC 7009): a client revokes one of its tokens, through the same
//! domain function as `TokenService.RevokeToken` (which applies the `token_type_hint` rule).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Peer;
use super::error::OAuthError;
use super::form::{Form, client_credentials};
use super::token::{client_address, client_certificate};
use crate::domain::{RevokeRequest, Tokend};

/// The revocation endpoint: 200 with an empty body for any token the client may revoke,
/// unknown and expired ones included (RFC 7009 section 2.2).
pub async fn revoke(
    State(tokend): State<Arc<Tokend>>,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match revoke_token(&tokend, &peer, &headers, body).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(err) => err.into_response(),
    }
}

async fn revoke_token(
    tokend: &Tokend,
    peer: &Peer,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), OAuthError> {
    let form = Form::read(headers, body).await?;
    // A missing token or a bad hint is judged after the client has authenticated (RFC 7009
    // section 2.1), by the domain.
    let token = form.get("token").unwrap_or_default().to_owned();
    let certificate = client_certificate(tokend, peer, headers)?;
    let credentials = client_credentials(headers, &form, certificate.is_some())?;
    let basic = credentials.basic;
    let request = RevokeRequest {
        client: credentials.into_client_auth(client_address(tokend, peer, headers), certificate)?,
        token,
        token_type_hint: form.get("token_type_hint").unwrap_or_default().to_owned(),
    };
    tokend
        .tokens
        .revoke(&request)
        .await
        .map_err(|e| OAuthError::from_domain(e, basic))
}
