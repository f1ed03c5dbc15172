//! `POST /oauth2/introspect` (RFC 7662): the same introspection function as
//! `IntrospectionService.Introspect`, with the same members and the same `active: false`-only
//! answer for any token that is not active.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Peer;
use super::error::{self, OAuthError};
use super::form::{Form, client_credentials};
use super::token::{client_address, client_certificate};
use crate::domain::clients::certificate::{bad_thumbprint, is_thumbprint};
use crate::domain::policy::address;
use crate::domain::{ActiveToken, Caller, Tokend};
use crate::transport::{authorization, bearer_token};

/// The introspection endpoint. The caller (the resource server) authenticates with a bearer
/// token holding `tokend.introspect`, or with its own client credentials (HTTP Basic, a secret
/// or an RFC 7523 assertion in the body) when its client is allowed `tokend.introspect`.
pub async fn introspect(
    State(tokend): State<Arc<Tokend>>,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match answer(&tokend, &peer, &headers, body).await {
        Ok(body) => error::json(StatusCode::OK, &body),
        Err(err) => err.into_response(),
    }
}

async fn answer(
    tokend: &Tokend,
    peer: &Peer,
    headers: &HeaderMap,
    body: Body,
) -> Result<Value, OAuthError> {
    let form = Form::read(headers, body).await?;
    let token = form.require("token")?;
    // RFC 7662 section 2.1: an unknown hint is ignored; the token's own shape decides.
    let from = client_address(tokend, peer, headers);
    let (caller, basic) = caller(tokend, peer, headers, &form, from).await?;
    // tokend's extension, as over gRPC: where the resource server saw the token come from.
    let seen_from = match form.get("client_address") {
        None => None,
        Some(raw) => Some(
            address::parse_address("client_address", raw)
                .map_err(|e| OAuthError::from_domain(e, basic))?,
        ),
    };
    let thumbprint = form.get("client_certificate_thumbprint");
    if let Some(raw) = thumbprint
        && !is_thumbprint(raw)
    {
        return Err(OAuthError::from_domain(bad_thumbprint(), basic));
    }
    let active = tokend
        .introspection
        .introspect(caller.as_ref(), token, seen_from, thumbprint)
        .await
        .map_err(|e| OAuthError::from_domain(e, basic))?;
    Ok(members(active))
}

/// Who asks, and whether they used HTTP Basic. `None` when nothing was presented: the domain
/// then decides whether introspection needs a caller (`introspection.require_auth`).
async fn caller(
    tokend: &Tokend,
    peer: &Peer,
    headers: &HeaderMap,
    form: &Form,
    from: Option<std::net::IpAddr>,
) -> Result<(Option<Caller>, bool), OAuthError> {
    let header = authorization(headers).map_err(|e| OAuthError::from_domain(e, false))?;
    let bearer = header.and_then(|v| v.to_str().ok()).and_then(bearer_token);
    // Over mTLS a client_id alone, with the certificate, is client credentials (RFC 8705).
    let certificate = client_certificate(tokend, peer, headers)?;
    let id_with_certificate = certificate.is_some() && form.get("client_id").is_some();
    let credentials_sent = ["client_secret", "client_assertion", "client_assertion_type"]
        .iter()
        .any(|key| form.get(key).is_some())
        || id_with_certificate;
    if let Some(token) = bearer {
        if credentials_sent {
            return Err(OAuthError::invalid_request(
                "use one caller authentication: a bearer token or client credentials, not both",
            ));
        }
        let mut caller = tokend
            .introspection
            .authenticate(token)
            .await
            .map_err(|e| OAuthError::from_domain(e, false))?;
        caller.address = from;
        return Ok((Some(caller), false));
    }
    if header.is_none() && !credentials_sent {
        return Ok((None, false));
    }
    let credentials = client_credentials(headers, form, certificate.is_some())?;
    let basic = credentials.basic;
    let caller = tokend
        .tokens
        .authenticate_caller(&credentials.into_client_auth(from, certificate)?)
        .await
        .map_err(|e| OAuthError::from_domain(e, basic))?;
    Ok((Some(caller), basic))
}

/// RFC 7662 section 2.2 members: `{"active": false}` alone for a token that is not active.
pub fn members(active: Option<ActiveToken>) -> Value {
    let Some(active) = active else {
        return json!({ "active": false });
    };
    let c = active.claims();
    let mut body = json!({
        "active": true,
        "scope": active.scopes().to_claim(),
        "client_id": c.client_id,
        "sub": c.sub,
        "aud": c.aud,
        "iss": c.iss,
        "exp": c.exp,
        "iat": c.iat,
        "nbf": c.nbf,
        "jti": c.jti,
        "token_type": "Bearer",
        "tenant": c.tenant,
        "roles": c.roles,
    });
    if let Some(act) = &c.act {
        body["act"] = serde_json::to_value(act).unwrap_or(Value::Null);
    }
    if let Some(cnf) = &c.cnf {
        body["cnf"] = serde_json::to_value(cnf).unwrap_or(Value::Null);
    }
    body
}
