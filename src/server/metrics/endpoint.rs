//! The metrics port: `GET /metrics` in the Prometheus text format, on a listener of its own.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;

use super::Metrics;

/// Path the metrics are served at.
pub const METRICS_PATH: &str = "/metrics";

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use axum::http::header::CONTENT_TYPE;
    use axum::routing::get;
    let router = axum::Router::new().route(
        METRICS_PATH,
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                    metrics.render(),
                )
            }
        }),
    );
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tonic::transport::Server::builder()
        .accept_http1(true)
        .add_routes(tonic::service::Routes::from(router))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .context("serving metrics")
}

/// Serves `metrics` on `listener` in a task of its own until `stopping` turns true (shutdown
/// has begun); a failure is logged, never fatal to the API port.
pub fn spawn(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let stopped = async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
    };
    let serve = serve(listener, metrics, stopped);
    tokio::spawn(async move {
        if let Err(err) = serve.await {
            tracing::error!(error = ?err, "the metrics port stopped");
        }
    });
    tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    Ok(())
}
