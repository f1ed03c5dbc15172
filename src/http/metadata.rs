//! `GET /.well-known/oauth-authorization-server` (RFC 8414): where tokend's endpoints are and
//! what they accept, for OAuth 2.0 libraries that discover them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST};
use axum::response::IntoResponse;

use super::{HttpConfig, INTROSPECT_PATH, JWKS_PATH, REVOKE_PATH, TOKEN_PATH};
use crate::domain::GrantType;
use crate::domain::clients::{ASSERTION_ALGORITHMS, AuthMethod};

/// The metadata document. Endpoint URLs start with `server.public_url`; without it, with the
/// issuer when that is an http(s) URL, else with the `Host` the client used.
pub async fn metadata(
    State(config): State<Arc<HttpConfig>>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let base = base_url(&config, &headers);
    // RFC 7591 / RFC 8705 names only: a workload's federated token (`federated_jwt`, tokend's
    // own name) travels in the same `client_assertion` field as `private_key_jwt`.
    let methods: Vec<&str> = AuthMethod::ALL
        .into_iter()
        .filter(|m| *m != AuthMethod::FederatedJwt)
        .map(AuthMethod::as_str)
        .collect();
    let body = serde_json::json!({
        "issuer": config.issuer,
        "token_endpoint": format!("{base}{TOKEN_PATH}"),
        "jwks_uri": format!("{base}{JWKS_PATH}"),
        "grant_types_supported": GrantType::ALL.map(GrantType::as_str),
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "revocation_endpoint": format!("{base}{REVOKE_PATH}"),
        "revocation_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        // Also a bearer token holding tokend.introspect (no registered method name says so).
        "introspection_endpoint": format!("{base}{INTROSPECT_PATH}"),
        "introspection_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        // Machine-to-machine only: no authorization endpoint, so no response types.
        "response_types_supported": [],
        // RFC 8705 section 3.3: access tokens bound to the client's TLS certificate.
        "tls_client_certificate_bound_access_tokens": true,
    });
    (
        [
            (CONTENT_TYPE, "application/json"),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        body.to_string(),
    )
}

fn base_url(config: &HttpConfig, headers: &HeaderMap) -> String {
    if let Some(url) = &config.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    if config.issuer.starts_with("https://") || config.issuer.starts_with("http://") {
        return config.issuer.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}
