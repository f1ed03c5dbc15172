//! The API port: tokend's gRPC services and its HTTP routes on one router, wrapped in the
//! metrics and limits layers and served over TLS or plaintext; and the plaintext port that
//! serves only health.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_health::pb::health_server::{Health, HealthServer};

use super::connections::{self, ConnectionGate};
use super::limits::LimitsLayer;
use super::metrics::{Metrics, RequestMetricsLayer};
use super::tasks::AbortOnDrop;
use super::tls::{self, ReloadingTls};
use crate::config::LimitsConfig;
use crate::domain::Tokend;
use crate::http::probes::Probes;
use crate::{grpc, http, telemetry};

/// The API server, running until its shutdown signal and the end of the calls in flight.
pub(super) type Serving = Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>>;

/// What the front ends take besides the domain.
pub(super) struct FrontEnds {
    pub(super) http: http::HttpConfig,
    /// Envoy external authorization, when enabled.
    pub(super) ext_authz: Option<grpc::ExtAuthzConfig>,
    /// HTTP forward auth (`/edge/verify`), when enabled.
    pub(super) forward_auth: Option<http::ForwardAuthConfig>,
    /// Largest gRPC request message, decoded.
    pub(super) max_request_bytes: usize,
}

/// Every route of the API port: gRPC (tokend's services, health, reflection, ext_authz when
/// enabled) merged with the HTTP routes, one fallback for both.
pub(super) fn api_routes(
    tokend: Arc<Tokend>,
    health: HealthServer<impl Health>,
    probes: Probes,
    front_ends: &FrontEnds,
) -> anyhow::Result<Routes> {
    let grpc = grpc::routes(
        tokend.clone(),
        health,
        front_ends.ext_authz.clone(),
        front_ends.max_request_bytes,
    )?;
    Ok(Routes::from(http::with_grpc(
        grpc.into_axum_router(),
        tokend,
        front_ends.http.clone(),
        probes,
        front_ends.forward_auth.clone(),
    )))
}

/// Serves `routes` on `listener` (over TLS when `tls` is given, its files reread by the
/// returned task) until `signal` resolves, then drains.
pub(super) fn serve_api(
    listener: TcpListener,
    tls: Option<Arc<ReloadingTls>>,
    gate: Arc<ConnectionGate>,
    limits: &LimitsConfig,
    metrics: Option<Arc<Metrics>>,
    routes: Routes,
    signal: impl Future<Output = ()> + Send + 'static,
) -> (Serving, Option<AbortOnDrop>) {
    // The metrics layer outside the limits, so it counts what they refuse too.
    let server = http2(limits)
        .trace_fn(telemetry::request_span)
        .layer(RequestMetricsLayer::new(metrics))
        .layer(LimitsLayer::new(
            limits.max_requests_in_flight,
            limits.request_timeout,
            limits.max_header_list_bytes,
        ))
        .add_routes(routes);
    match tls {
        Some(tls) => {
            let reload = AbortOnDrop(tokio::spawn(tls.clone().reload_every_period()));
            let incoming = tls::incoming(listener, tls, gate);
            (
                Box::pin(server.serve_with_incoming_shutdown(incoming, signal)),
                Some(reload),
            )
        }
        None => {
            let incoming = connections::plaintext(listener, gate);
            (
                Box::pin(server.serve_with_incoming_shutdown(incoming, signal)),
                None,
            )
        }
    }
}

/// The HTTP/1.1 + HTTP/2 server with the per-connection limits.
fn http2(limits: &LimitsConfig) -> Server {
    let server = Server::builder()
        .accept_http1(true)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_max_header_list_size(limits.max_header_list_bytes)
        .http2_keepalive_interval(limits.keepalive_interval)
        .http2_keepalive_timeout(Some(limits.keepalive_timeout));
    match limits.max_connection_age {
        // After GOAWAY, calls in flight get as long as any call may take.
        Some(age) => server
            .max_connection_age(age)
            .max_connection_age_grace(limits.request_timeout),
        None => server,
    }
}

/// Serves only health on `listener`, in plaintext, until the guard drops: `grpc.health.v1.Health`
/// and the HTTP/1.1 probes `/healthz` and `/readyz`. Its connections are limited like the API
/// port's, but counted apart: a flood of the API port must not starve the probes.
pub(super) fn serve_health(
    listener: TcpListener,
    health: HealthServer<impl Health>,
    probes: Probes,
    limits: &LimitsConfig,
) -> AbortOnDrop {
    let incoming = connections::plaintext(listener, ConnectionGate::new(limits));
    let routes = http::health_only(Routes::new(health).into_axum_router(), probes);
    let only_health = Server::builder()
        .accept_http1(true)
        .add_routes(Routes::from(routes));
    AbortOnDrop(tokio::spawn(async move {
        if let Err(err) = only_health.serve_with_incoming(incoming).await {
            tracing::error!(error = %err, "the health port stopped");
        }
    }))
}
