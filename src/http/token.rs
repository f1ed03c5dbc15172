//! `POST /oauth2/token` (RFC 6749 sections 4.4 and 6, RFC 8693): the client-credentials,
//! refresh and token-exchange grants over HTTP, calling the same domain functions as
//! `TokenService`, so scopes, audiences, allow-lists, rate limits, the lockout and the audit
//! apply alike.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Peer;
use super::error::{OAuthError, json};
use super::form::{ClientCredentials, Form, client_credentials};
use crate::domain::{
    ACCESS_TOKEN_TYPE, ExchangeRequest, IssuedToken, RefreshRequest, TokenRequest, Tokend,
};

/// The token-exchange grant (RFC 8693 section 2.1).
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The token endpoint.
pub async fn token(
    State(tokend): State<Arc<Tokend>>,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match grant(&tokend, peer, &headers, body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn grant(
    tokend: &Tokend,
    peer: Peer,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, OAuthError> {
    let form = Form::read(headers, body).await?;
    let grant_type = form.require("grant_type")?;
    if !matches!(
        grant_type,
        "client_credentials" | "refresh_token" | TOKEN_EXCHANGE
    ) {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!(
                "grant_type {grant_type} is not supported: use client_credentials, refresh_token \
                 or {TOKEN_EXCHANGE}"
            ),
        ));
    }
    let ClientCredentials {
        client_id,
        client_secret,
        basic,
    } = client_credentials(headers, &form)?;
    let client_address = client_address(tokend, peer, headers);
    let scopes: Vec<String> = form
        .get("scope")
        .map(|s| {
            s.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    // RFC 8707 `resource` and RFC 8693 `audience` both name audiences here.
    let mut audience: Vec<String> = form.all("resource").to_vec();
    audience.extend(form.all("audience").iter().cloned());
    let issued = if grant_type == TOKEN_EXCHANGE {
        let request = ExchangeRequest {
            client_id,
            client_address,
            client_secret,
            subject_token: form.require("subject_token")?.to_owned(),
            subject_token_type: form.require("subject_token_type")?.to_owned(),
            actor_token: form.get("actor_token").unwrap_or_default().to_owned(),
            actor_token_type: form.get("actor_token_type").unwrap_or_default().to_owned(),
            requested_token_type: form
                .get("requested_token_type")
                .unwrap_or_default()
                .to_owned(),
            audience,
            scopes,
        };
        let issued = tokend
            .exchange(&request)
            .await
            .map_err(|e| OAuthError::from_domain(e, basic))?;
        let mut body = success(&issued);
        body["issued_token_type"] = ACCESS_TOKEN_TYPE.into();
        return Ok(json(StatusCode::OK, &body));
    } else if grant_type == "client_credentials" {
        let request = TokenRequest {
            client_id,
            client_address,
            client_secret,
            scopes,
            audience,
        };
        tokend.tokens.issue(&request).await
    } else {
        let request = RefreshRequest {
            client_id,
            client_address,
            client_secret,
            refresh_token: form.require("refresh_token")?.to_owned(),
            scopes,
        };
        tokend.tokens.refresh(&request).await
    };
    let issued = issued.map_err(|e| OAuthError::from_domain(e, basic))?;
    Ok(json(StatusCode::OK, &success(&issued)))
}

/// The section 5.1 answer.
fn success(issued: &IssuedToken) -> serde_json::Value {
    let mut body = serde_json::json!({
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": issued.scopes.to_claim(),
    });
    if let Some(refresh) = &issued.refresh_token {
        body["refresh_token"] = refresh.expose().into();
    }
    body
}

/// The caller's address under the same rules as gRPC's (trusted proxies and
/// `x-forwarded-for`).
pub(super) fn client_address(tokend: &Tokend, peer: Peer, headers: &HeaderMap) -> Option<IpAddr> {
    let peer = peer.0.map(|a| a.ip());
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.as_bytes());
    tokend.policy.client_address(peer, forwarded)
}
