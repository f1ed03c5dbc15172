//! Plain HTTP beside gRPC, on the same port: what standard JWT tooling fetches over HTTP/1.1.
//! Today that is the JWKS at `/.well-known/jwks.json` (Envoy's `jwt_authn`, every JOSE library);
//! the OAuth2 endpoints of the interop release will live here too. Handlers are as thin as the
//! gRPC ones: one domain call each.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::domain::Tokend;

/// Path of the JWK Set.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// How long verifiers may cache the JWKS. Keys are published before they sign; the
/// pre-publication window (`keys.prepublish_secs`) must stay longer than this (config
/// validation enforces it), so a cached set always holds the key of any token a verifier sees.
pub const JWKS_MAX_AGE_SECS: u32 = 300;

/// The HTTP routes merged with the gRPC ones (`grpc`), and one fallback for both: gRPC calls to
/// unknown methods get `UNIMPLEMENTED` as gRPC clients expect, anything else a plain 404.
pub fn with_grpc(grpc: Router, tokend: Arc<Tokend>) -> Router {
    let http = Router::new().route(JWKS_PATH, get(jwks)).with_state(tokend);
    grpc.merge(http).fallback(fallback)
}

async fn fallback(headers: HeaderMap) -> impl IntoResponse {
    let grpc = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if grpc {
        let unimplemented = tonic::Status::unimplemented("no such gRPC method");
        unimplemented
            .into_http::<axum::body::Body>()
            .into_response()
    } else {
        (StatusCode::NOT_FOUND, "not found\n").into_response()
    }
}

async fn jwks(State(tokend): State<Arc<Tokend>>) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "application/jwk-set+json".to_owned()),
            (
                CACHE_CONTROL,
                format!("public, max-age={JWKS_MAX_AGE_SECS}"),
            ),
        ],
        tokend.introspection.jwks_json(),
    )
}
