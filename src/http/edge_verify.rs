//! `/edge/verify` (any method): forward auth for the proxies people already run (nginx
//! `auth_request`, Caddy `forward_auth`, Traefik `ForwardAuth`). The same verdict as Envoy's
//! ext_authz, from the same domain function (`Introspector::authorize_edge`) and shown through
//! the same mapping (`transport::edge_answer`); only the way the request is described differs.
//!
//! The proxy describes the original request in headers, believed only from a peer in
//! `server.trusted_proxies` (as `x-forwarded-for` is): the method in `X-Forwarded-Method`
//! (Traefik, Caddy) or `X-Original-Method` (nginx configurations), the URI in
//! `X-Forwarded-Uri` or `X-Original-URI`, the client's address in `X-Forwarded-For`, and the
//! client certificate, for certificate-bound tokens, in `X-Forwarded-Client-Cert` (Envoy's
//! XFCC), `Client-Cert` (RFC 9440) or `X-SSL-Client-Cert` (nginx's URL-encoded PEM,
//! `$ssl_client_escaped_cert`). The token is the request's own `Authorization: Bearer`.
//!
//! Answers, bodies empty (nginx ignores them; others may forward them): 200 with the identity
//! headers for the proxy to copy upstream; 401 with an RFC 6750 `WWW-Authenticate: Bearer`
//! challenge; 403 (`insufficient_scope`, or a request that cannot be judged); 429 with
//! `Retry-After`; 400 for a malformed request; 503 when the answer cannot be known, so the
//! proxy fails closed.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::Peer;
use crate::domain::policy::QuotaReport;
use crate::domain::{EdgeRequest, EdgeRoutes, Error, Tokend};
use crate::transport::client_cert::urlencoded_pem_thumbprint;
use crate::transport::rate_limit::{rate_limit, rate_limit_policy};
use crate::transport::{
    self, Challenge, EdgeAnswer, Presentation, authorization, bearer_token, edge_answer,
};

const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// The endpoint's path.
pub const EDGE_VERIFY_PATH: &str = "/edge/verify";

/// The method headers, in the order believed.
const METHOD_HEADERS: [&str; 2] = ["x-forwarded-method", "x-original-method"];
/// The URI headers, in the order believed.
const URI_HEADERS: [&str; 2] = ["x-forwarded-uri", "x-original-uri"];
/// RFC 9440 `Client-Cert`: the DER certificate as a structured-field byte sequence.
const CLIENT_CERT: &str = "client-cert";
/// nginx's `$ssl_client_escaped_cert`, as configurations commonly name it.
const SSL_CLIENT_CERT: &str = "x-ssl-client-cert";

/// The route rules and the identity header names (client id, tenant, scopes, `sub`), shared
/// with ext_authz.
#[derive(Debug, Clone)]
pub struct ForwardAuthConfig {
    pub routes: Arc<EdgeRoutes>,
    pub headers: [String; 4],
}

pub(super) struct ForwardAuth {
    pub tokend: Arc<Tokend>,
    pub config: ForwardAuthConfig,
}

/// The handler.
pub(super) async fn verify(
    State(state): State<Arc<ForwardAuth>>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    match judge(&state, &peer, &headers).await {
        Ok(EdgeAnswer::Allow(identity, quotas)) => {
            allowed(&state.config.headers, identity, &quotas)
        }
        Ok(EdgeAnswer::Deny(shown, err, quotas)) => denied(&shown, &err, &quotas),
        // A malformed request (two Authorization fields, an unreadable certificate header):
        // 400, as its presentation says.
        Err(err @ Error::InvalidArgument { .. }) => {
            denied(&Presentation::of(&err), &err, &QuotaReport::default())
        }
        Err(err) => {
            // The answer cannot be known (the database is down for an opaque token): 503, so
            // the proxy fails closed. The presentation logs an unexpected error, once.
            let mut shown = Presentation::of(&err);
            shown.http = StatusCode::SERVICE_UNAVAILABLE;
            shown.challenge = None;
            shown
                .retry_after
                .get_or_insert(std::time::Duration::from_secs(1));
            denied(&shown, &err, &QuotaReport::default())
        }
    }
}

async fn judge(state: &ForwardAuth, peer: &Peer, headers: &HeaderMap) -> Result<EdgeAnswer, Error> {
    let tokend = &state.tokend;
    let peer_ip = peer.0.map(|a| a.ip());
    let Some(original) = original_request(tokend, peer_ip, headers) else {
        let err = Error::PermissionDenied(
            "the original request is unknown: /edge/verify believes X-Forwarded-Method and \
             X-Forwarded-Uri (or X-Original-Method and X-Original-URI) only from \
             server.trusted_proxies"
                .into(),
        );
        let mut shown = Presentation::of(&err);
        shown.challenge = None;
        shown.oauth2 = Some("invalid_request");
        return Ok(EdgeAnswer::Deny(
            Box::new(shown),
            err,
            QuotaReport::default(),
        ));
    };
    let bearer = match authorization(headers)? {
        None => None,
        // Not text, or another scheme than Bearer given as the token: an invalid token.
        Some(value) => Some(value.to_str().ok().and_then(bearer_token).unwrap_or("")),
    };
    let certificate = forwarded_certificate(tokend, peer_ip, headers)?;
    let request = EdgeRequest {
        method: original.0,
        path: original.1,
        bearer,
        source: transport::client_address(&tokend.policy, peer_ip, headers),
        certificate: certificate.as_deref(),
    };
    let verdict = tokend
        .introspection
        .authorize_edge(&state.config.routes, request)
        .await?;
    Ok(edge_answer(verdict))
}

/// The original method and URI, from a trusted proxy's headers; `None` when the peer is not
/// one or did not say.
fn original_request<'h>(
    tokend: &Tokend,
    peer: Option<IpAddr>,
    headers: &'h HeaderMap,
) -> Option<(&'h str, &'h str)> {
    if !tokend.policy.is_trusted_proxy(peer) {
        return None;
    }
    let first = |names: [&str; 2]| {
        names
            .iter()
            .find_map(|name| headers.get(*name))
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
    };
    Some((first(METHOD_HEADERS)?, first(URI_HEADERS)?))
}

/// The `x5t#S256` of the client certificate the trusted proxy forwards, if any. A header it
/// sent that cannot be read is an error (`invalid_request`), never read as no certificate.
fn forwarded_certificate(
    tokend: &Tokend,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
) -> Result<Option<String>, Error> {
    if !tokend.policy.is_trusted_proxy(peer) {
        return Ok(None);
    }
    // XFCC; the proxy's own TLS certificate (if it has one) is not its client's.
    if let Some(cert) = transport::client_certificate(&tokend.policy, peer, None, headers)? {
        return Ok(Some(cert.thumbprint().to_owned()));
    }
    if let Some(value) = headers.get(CLIENT_CERT) {
        let der = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().strip_prefix(':')?.strip_suffix(':'))
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .ok_or_else(|| {
                Error::invalid(
                    CLIENT_CERT,
                    "is not an RFC 9440 byte sequence (:base64 DER:)",
                )
            })?;
        return Ok(Some(crate::domain::clients::certificate::thumbprint(&der)));
    }
    if let Some(value) = headers.get(SSL_CLIENT_CERT) {
        let thumbprint = value
            .to_str()
            .ok()
            .and_then(urlencoded_pem_thumbprint)
            .ok_or_else(|| {
                Error::invalid(
                    SSL_CLIENT_CERT,
                    "is not a URL-encoded PEM certificate (nginx: $ssl_client_escaped_cert)",
                )
            })?;
        return Ok(Some(thumbprint));
    }
    Ok(None)
}

/// 200 with the identity headers, each always sent, empty when the token has no value for it
/// (Caddy 2.6's `copy_headers` would otherwise set its own placeholder text upstream).
fn allowed(names: &[String; 4], values: [String; 4], quotas: &QuotaReport) -> Response {
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // What is left of a quota, once it runs low (as ext_authz: on every answer it cost 10 %).
    if let Some(left) = quotas.running_low().then(|| rate_limit(quotas)).flatten()
        && let Ok(value) = HeaderValue::try_from(left)
    {
        headers.insert(RATELIMIT, value);
    }
    for (name, value) in names.iter().zip(values) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value),
        ) {
            headers.insert(name, value);
        }
    }
    response
}

/// The refusal: its status, the RFC 6750 challenge with the error's description, the retry
/// delay, over a quota the RateLimit headers; no body.
fn denied(shown: &Presentation, err: &Error, quotas: &QuotaReport) -> Response {
    let mut response = shown.http.into_response();
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(challenge) = &shown.challenge {
        let mut value = challenge.header_value();
        // RFC 6750 section 3: a description only beside an error code.
        if let Challenge::Bearer { error: Some(_), .. } = challenge {
            let description = err.to_string().replace(['"', '\\'], "'");
            value.push_str(&format!(", error_description=\"{description}\""));
        }
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(WWW_AUTHENTICATE, value);
        }
    }
    if let Some(secs) = shown.retry_after_secs() {
        headers.insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    let quota_headers = [
        (RATELIMIT_POLICY, rate_limit_policy(quotas)),
        (RATELIMIT, rate_limit(quotas)),
    ];
    for (name, value) in quota_headers {
        if let Some(Ok(value)) = value.map(HeaderValue::try_from) {
            headers.insert(name, value);
        }
    }
    response
}
