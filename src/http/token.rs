//! `POST /oauth2/token` (RFC 6749 sections 4.4 and 6, RFC 8693): the form becomes the domain's
//! typed grant request and goes to the same entry point as `TokenService`, so grant types,
//! scopes, audiences, allow-lists, rate limits, the lockout and the audit apply alike.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Peer;
use super::error::{OAuthError, json};
use super::form::{Form, client_credentials};
use crate::domain::{
    ClientCertificate, Exchange, Grant, GrantRequest, GrantType, IssuedToken, Tokend,
};
use crate::transport;

/// The token endpoint.
pub async fn token(
    State(tokend): State<Arc<Tokend>>,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match grant(&tokend, &peer, &headers, body).await {
        Ok(issued) => json(StatusCode::OK, &success(&issued)),
        Err(err) => err.into_response(),
    }
}

async fn grant(
    tokend: &Tokend,
    peer: &Peer,
    headers: &HeaderMap,
    body: Body,
) -> Result<IssuedToken, OAuthError> {
    let form = Form::read(headers, body).await?;
    let grant_type = GrantType::parse(form.require("grant_type")?)
        .map_err(|e| OAuthError::from_domain(e, false))?;
    let certificate = client_certificate(tokend, peer, headers)?;
    let credentials = client_credentials(headers, &form, certificate.is_some())?;
    let basic = credentials.basic;
    let request = GrantRequest {
        client: credentials.into_client_auth(client_address(tokend, peer, headers), certificate)?,
        scopes: form.scopes(),
        grant: grant_of(grant_type, &form)?,
    };
    tokend
        .tokens
        .grant(&request)
        .await
        .map_err(|e| OAuthError::from_domain(e, basic))
}

/// The grant's own parameters. RFC 8707 `resource` and RFC 8693 `audience` both name
/// audiences here.
fn grant_of(grant_type: GrantType, form: &Form) -> Result<Grant, OAuthError> {
    let mut audience: Vec<String> = form.all("resource").to_vec();
    audience.extend(form.all("audience").iter().cloned());
    let text = |key| form.get(key).unwrap_or_default().to_owned();
    Ok(match grant_type {
        GrantType::ClientCredentials => Grant::ClientCredentials { audience },
        GrantType::RefreshToken => Grant::RefreshToken {
            refresh_token: form.require("refresh_token")?.to_owned(),
        },
        GrantType::TokenExchange => Grant::TokenExchange(Exchange {
            subject_token: form.require("subject_token")?.to_owned(),
            subject_token_type: form.require("subject_token_type")?.to_owned(),
            actor_token: text("actor_token"),
            actor_token_type: text("actor_token_type"),
            requested_token_type: text("requested_token_type"),
            audience,
        }),
    })
}

/// The section 5.1 answer (with RFC 8693's `issued_token_type` for an exchanged token). With
/// a refresh token comes `refresh_token_expires_in` (seconds, as on gRPC): RFC 6749 has no
/// field for it, and clients migrating from systems that sent it use it to plan their renewal.
fn success(issued: &IssuedToken) -> serde_json::Value {
    let mut body = serde_json::json!({
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": issued.scopes.to_claim(),
    });
    if let Some(refresh) = &issued.refresh_token {
        body["refresh_token"] = refresh.expose().into();
        body["refresh_token_expires_in"] = issued.refresh_expires_in.into();
    }
    if let Some(issued_type) = issued.issued_token_type {
        body["issued_token_type"] = issued_type.into();
    }
    body
}

/// The caller's address under the same rules as gRPC's (trusted proxies and
/// `x-forwarded-for`).
pub(super) fn client_address(tokend: &Tokend, peer: &Peer, headers: &HeaderMap) -> Option<IpAddr> {
    transport::client_address(&tokend.policy, peer.0.map(|a| a.ip()), headers)
}

/// The caller's client certificate under the same rules as gRPC's (the TLS peer's, or a
/// trusted proxy's `x-forwarded-client-cert`).
pub(super) fn client_certificate(
    tokend: &Tokend,
    peer: &Peer,
    headers: &HeaderMap,
) -> Result<Option<Arc<ClientCertificate>>, OAuthError> {
    let ip = peer.0.map(|a| a.ip());
    transport::client_certificate(&tokend.policy, ip, peer.leaf(), headers)
        .map_err(|e| OAuthError::from_domain(e, false))
}
