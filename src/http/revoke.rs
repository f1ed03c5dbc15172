//! `POST /oauth2/revoke` (RFC 7009): a client revokes one of its tokens, through the same
//! domain function as `TokenService.RevokeToken`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Peer;
use super::error::OAuthError;
use super::form::{Form, client_credentials};
use super::token::client_address;
use crate::domain::{RevokeRequest, Tokend};

/// The revocation endpoint: 200 with an empty body for any token the client may revoke,
/// unknown and expired ones included (RFC 7009 section 2.2).
pub async fn revoke(
    State(tokend): State<Arc<Tokend>>,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match revoke_token(&tokend, peer, &headers, body).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(err) => err.into_response(),
    }
}

async fn revoke_token(
    tokend: &Tokend,
    peer: Peer,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), OAuthError> {
    let form = Form::read(headers, body).await?;
    let token = form.require("token")?.to_owned();
    let hint = form.get("token_type_hint").unwrap_or_default();
    if !matches!(hint, "" | "access_token" | "refresh_token") {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_token_type",
            format!(
                "token_type_hint {hint} is not a token type tokend issues: use access_token or refresh_token"
            ),
        ));
    }
    let creds = client_credentials(headers, &form)?;
    let request = RevokeRequest {
        client_id: creds.client_id,
        client_address: client_address(tokend, peer, headers),
        client_secret: creds.client_secret,
        token,
        token_type_hint: hint.to_owned(),
    };
    tokend
        .tokens
        .revoke(&request)
        .await
        .map_err(|e| OAuthError::from_domain(e, creds.basic))
}
