//! Plain HTTP beside gRPC, on the same port (HTTP/1.1 and h2): the JWKS at
//! `/.well-known/jwks.json` (Envoy's `jwt_authn`, every JOSE library), the OAuth 2.0 token,
//! introspection and revocation endpoints and the RFC 8414 metadata, for stock OAuth 2.0
//! libraries; forward auth for nginx, Caddy and Traefik at `/edge/verify` when switched on
//! (`edge_verify`); and the plain-HTTP probes `/healthz` and `/readyz` (`probes`). Handlers are as thin as
//! the gRPC ones: form in, one domain call, JSON out; `error` is the one table from domain
//! errors to HTTP statuses and RFC 6749 codes.

mod edge_verify;
mod error;
mod form;
mod introspect;
mod metadata;
pub mod probes;
mod revoke;
mod token;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, get, post};

use crate::domain::{JWKS_MAX_AGE, Tokend};

/// Path of the JWK Set.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Path of the token endpoint (RFC 6749 section 3.2).
pub const TOKEN_PATH: &str = crate::domain::TOKEN_ENDPOINT_PATH;
/// Path of the revocation endpoint (RFC 7009 section 2).
pub const REVOKE_PATH: &str = "/oauth2/revoke";
/// Path of the introspection endpoint (RFC 7662 section 2).
pub const INTROSPECT_PATH: &str = "/oauth2/introspect";
/// Path of the authorization server metadata (RFC 8414 section 3).
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

pub use edge_verify::{EDGE_VERIFY_PATH, ForwardAuthConfig};

/// Every HTTP route on the API port (the `route` label of the HTTP metrics).
pub const ROUTES: [&str; 8] = [
    JWKS_PATH,
    TOKEN_PATH,
    REVOKE_PATH,
    INTROSPECT_PATH,
    METADATA_PATH,
    probes::HEALTHZ_PATH,
    probes::READYZ_PATH,
    EDGE_VERIFY_PATH,
];

/// The TCP peer of a request, over plaintext or TLS (the connection info tonic attaches), and
/// over TLS the certificate chain the client presented (verified in the handshake).
pub(crate) struct Peer(
    pub Option<std::net::SocketAddr>,
    pub Option<Arc<Vec<rustls::pki_types::CertificateDer<'static>>>>,
);

impl Peer {
    /// The client's certificate (the chain's leaf), DER.
    pub(crate) fn leaf(&self) -> Option<&[u8]> {
        self.1.as_ref().and_then(|c| c.first()).map(|c| c.as_ref())
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
        let extensions = &parts.extensions;
        let tls = extensions.get::<TlsConnectInfo<TcpConnectInfo>>();
        let tcp = extensions
            .get::<TcpConnectInfo>()
            .or_else(|| tls.map(TlsConnectInfo::get_ref));
        Ok(Self(
            tcp.and_then(TcpConnectInfo::remote_addr),
            tls.and_then(TlsConnectInfo::peer_certs),
        ))
    }
}

/// What the HTTP front end needs besides the domain.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `iss` of tokend's tokens, the metadata's `issuer`.
    pub issuer: String,
    /// How clients reach tokend (behind a proxy), e.g. `https://auth.example.com`.
    pub public_url: Option<String>,
}

/// The HTTP routes merged with the gRPC ones (`grpc`), and one fallback for both: gRPC calls to
/// unknown methods get `UNIMPLEMENTED` as gRPC clients expect, anything else a plain 404.
pub fn with_grpc(
    grpc: Router,
    tokend: Arc<Tokend>,
    config: HttpConfig,
    probes: probes::Probes,
    forward_auth: Option<ForwardAuthConfig>,
) -> Router {
    let http = Router::new()
        .route(JWKS_PATH, get(jwks))
        .route(TOKEN_PATH, post(token::token))
        .route(REVOKE_PATH, post(revoke::revoke))
        .route(INTROSPECT_PATH, post(introspect::introspect))
        .with_state(tokend.clone());
    // Forward auth answers anyone who can reach the port with whose token they hold: served
    // only when switched on (`ext_authz.forward_auth`).
    let http = match forward_auth {
        Some(config) => http.merge(
            Router::new()
                .route(EDGE_VERIFY_PATH, any(edge_verify::verify))
                .with_state(Arc::new(edge_verify::ForwardAuth { tokend, config })),
        ),
        None => http,
    };
    let metadata = Router::new()
        .route(METADATA_PATH, get(metadata::metadata))
        .with_state(Arc::new(config));
    grpc.merge(http)
        .merge(metadata)
        .merge(probes::routes(probes))
        .fallback(fallback)
}

/// The health-only port: gRPC health (`grpc_health`) and the plain-HTTP probes, with the same
/// fallback as the API port (nothing else is served there).
pub fn health_only(grpc_health: Router, probes: probes::Probes) -> Router {
    grpc_health.merge(probes::routes(probes)).fallback(fallback)
}

async fn fallback(headers: HeaderMap) -> impl IntoResponse {
    if crate::transport::is_grpc(&headers) {
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
                format!("public, max-age={}", JWKS_MAX_AGE.as_secs()),
            ),
        ],
        tokend.introspection.jwks_json(),
    )
}
