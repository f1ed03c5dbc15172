//! Building and running the server: open the store, migrate, load keys, bind (port 0 works, for
//! tests), then serve until a shutdown future resolves, draining in-flight calls for a bounded
//! time after health has gone NOT_SERVING.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::ExposeSecret as _;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use crate::config::LimitsSettings;
use crate::config::Settings;
use crate::domain::{Clock, SyncConfig, SystemClock, Tokend, run_sync};
use crate::limits::LimitsLayer;
use crate::metrics::{Metrics, RequestMetricsLayer};
use crate::store::{self, ConnectOptions, Store};
use crate::tls::ReloadingTls;
use crate::{grpc, http, telemetry};

/// A built, bound, not yet serving tokend.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    tokend: Arc<Tokend>,
    shutdown_grace: Duration,
    sync: SyncConfig,
    key_reload: Duration,
    usage_flush: Duration,
    /// Heartbeat period and how long a heartbeat counts as live.
    heartbeat: (Duration, Duration),
    http: http::HttpConfig,
    /// Envoy external authorization, when enabled.
    ext_authz: Option<grpc::ExtAuthzConfig>,
    /// The metrics port, when `metrics.addr` is set.
    metrics: Option<TcpListener>,
    /// TLS on the API port, when `server.tls` is set.
    tls: Option<Arc<ReloadingTls>>,
    /// Request, connection and server limits.
    limits: LimitsSettings,
    /// The plaintext health-only port, when `server.health_addr` is set.
    health: Option<TcpListener>,
}

impl Application {
    /// Opens everything the server needs and binds its port.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// Like [`Application::build`] with a given clock (tests move time forward with one).
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        settings.validate()?;
        let tls = ReloadingTls::load(&settings.server.tls).context("loading the TLS files")?;
        let store = open_store(&settings).await?;
        let kek = settings.load_kek()?;
        let tokend = Tokend::open(store, kek, settings.domain(), clock)
            .await
            .context("loading signing keys")?;
        let listener = TcpListener::bind(settings.server.addr)
            .await
            .with_context(|| format!("binding {}", settings.server.addr))?;
        let local_addr = listener.local_addr()?;
        let ext_authz = ext_authz_config(&settings)?;
        let health = match settings.server.health_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the health port {addr}"))?,
            ),
            None => None,
        };
        let metrics = match settings.metrics.addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the metrics port {addr}"))?,
            ),
            None => None,
        };
        Ok(Self {
            listener,
            local_addr,
            tokend: Arc::new(tokend),
            shutdown_grace: Duration::from_secs(settings.server.shutdown_grace_secs),
            sync: settings.sync(),
            key_reload: settings.key_reload_period(),
            usage_flush: settings.usage_flush_period(),
            heartbeat: settings.heartbeat(),
            http: http::HttpConfig {
                issuer: settings.tokens.issuer.clone(),
                public_url: settings.server.public_url.clone(),
            },
            ext_authz,
            metrics,
            tls,
            limits: settings.limits.clone(),
            health,
        })
    }

    /// The bound health-only address, when `server.health_addr` is set.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound metrics address, when metrics are on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves. Then health turns NOT_SERVING, new connections are
    /// refused and in-flight calls get the configured grace period to finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (reporter, health) = tonic_health::server::health_reporter();
        let with_ext_authz = self.ext_authz.is_some();
        grpc::set_health(&reporter, ServingStatus::Serving, with_ext_authz).await;
        // The health-only port answers with the same statuses until the server has stopped.
        let _health_port = self.health.map(|listener| {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            let only_health = Server::builder().add_service(health.clone());
            AbortOnDrop(tokio::spawn(async move {
                if let Err(err) = only_health.serve_with_incoming(incoming).await {
                    tracing::error!(error = %err, "the health port stopped");
                }
            }))
        });
        let grpc = grpc::routes(
            self.tokend.clone(),
            health,
            self.ext_authz.clone(),
            self.limits.max_request_bytes,
        )?;
        let routes = Routes::from(http::with_grpc(
            grpc.into_axum_router(),
            self.tokend.clone(),
            self.http.clone(),
        ));
        let (stopping_tx, mut stopping_rx) = tokio::sync::watch::channel(false);
        let metrics = match self.metrics {
            Some(listener) => {
                let metrics = Arc::new(Metrics::new(self.tokend.clone(), &http::ROUTES)?);
                let mut stopping = stopping_rx.clone();
                let stopped = async move {
                    let _ = stopping.wait_for(|stopping| *stopping).await;
                };
                let addr = listener.local_addr()?;
                let serve = crate::metrics::serve(listener, metrics.clone(), stopped);
                tokio::spawn(async move {
                    if let Err(err) = serve.await {
                        tracing::error!(error = ?err, "the metrics port stopped");
                    }
                });
                tracing::info!(%addr, "serving Prometheus metrics at /metrics");
                Some(metrics)
            }
            None => None,
        };
        let keys = tokio::spawn(maintain_keys(
            self.tokend.clone(),
            self.key_reload,
            stopping_rx.clone(),
        ));
        let follow = tokio::spawn(follow_database(
            self.tokend.clone(),
            reporter.clone(),
            with_ext_authz,
        ));
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: health NOT_SERVING, draining in-flight calls");
            // Stopped (and awaited) first, so it cannot set a service back to SERVING.
            follow.abort();
            let _ = follow.await;
            grpc::set_health(&reporter, ServingStatus::NotServing, with_ext_authz).await;
            let _ = stopping_tx.send(true);
        };
        // Keeps this replica's view of clients and revocations current; stops with the server.
        let sync = tokio::spawn(run_sync(self.tokend.registry.clone(), self.sync));
        let _stop_sync = AbortOnDrop(sync);
        let usage = tokio::spawn(flush_usage(self.tokend.clone(), self.usage_flush));
        let _stop_usage = AbortOnDrop(usage);
        // Counted before serving, so the first calls already get this replica's share.
        beat(&self.tokend, self.heartbeat.1).await;
        let heartbeat = tokio::spawn(heartbeats(self.tokend.clone(), self.heartbeat));
        let _stop_heartbeat = AbortOnDrop(heartbeat);
        tracing::info!(addr = %self.local_addr, tls = self.tls.is_some(), "tokend ready");
        let limits = &self.limits;
        let secs = |n: u64| (n > 0).then(|| Duration::from_secs(n));
        let mut server = Server::builder()
            .accept_http1(true)
            .max_concurrent_streams(limits.max_concurrent_streams)
            .http2_max_header_list_size(limits.max_header_list_bytes)
            .http2_keepalive_interval(secs(limits.keepalive_interval_secs))
            .http2_keepalive_timeout(secs(limits.keepalive_timeout_secs));
        if let Some(age) = secs(limits.max_connection_age_secs) {
            // After GOAWAY, calls in flight get as long as any call may take.
            server = server
                .max_connection_age(age)
                .max_connection_age_grace(Duration::from_millis(limits.request_timeout_ms));
        }
        // The metrics layer outside the limits, so it counts what they refuse too.
        let server = server
            .trace_fn(telemetry::request_span)
            .layer(RequestMetricsLayer::new(metrics))
            .layer(LimitsLayer::new(
                limits.max_requests_in_flight,
                Duration::from_millis(limits.request_timeout_ms),
            ))
            .add_routes(routes);
        type Serving =
            std::pin::Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>>;
        let (serve, _reload): (Serving, _) = match self.tls {
            Some(tls) => {
                let reload = AbortOnDrop(tokio::spawn(tls.clone().reload_every_period()));
                let incoming = crate::tls::incoming(self.listener, tls);
                (
                    Box::pin(server.serve_with_incoming_shutdown(incoming, signal)),
                    Some(reload),
                )
            }
            None => {
                let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
                (
                    Box::pin(server.serve_with_incoming_shutdown(incoming, signal)),
                    None,
                )
            }
        };
        let grace = self.shutdown_grace;
        let deadline = async move {
            let _ = stopping_rx.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            result = serve => result.context("serving gRPC")?,
            () = deadline => tracing::warn!(grace_secs = grace.as_secs(), "drain timed out; closing remaining calls"),
        }
        keys.abort();
        self.tokend.leave().await;
        let written = self.tokend.flush_usage().await;
        tracing::info!(last_used_written = written, "stopped");
        Ok(())
    }
}

/// Aborts a background task when the server stops, however it stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Every `period` until shutdown begins: rotates the signing key if it is due and rereads the
/// stored keys, so rotations made by other replicas are served here too.
async fn maintain_keys(
    tokend: Arc<Tokend>,
    period: Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate, and the keys were just loaded
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopping.wait_for(|stopping| *stopping) => return,
        }
        if let Err(err) = tokend.keys.maintain().await {
            tracing::warn!(error = ?err, "signing-key maintenance failed; retrying next period");
        }
    }
}

/// How often health rechecks whether the replica's view is still fresh enough to answer from.
const FRESHNESS_CHECK: Duration = Duration::from_millis(500);

/// Keeps health in step with the database until aborted: the write services go NOT_SERVING as
/// soon as the sync loop finds the database unreachable and come back when it answers again;
/// Introspection stays SERVING as long as it may answer from memory.
async fn follow_database(
    tokend: Arc<Tokend>,
    reporter: tonic_health::server::HealthReporter,
    ext_authz: bool,
) {
    let mut database = tokend.database_changes();
    let mut ticks = tokio::time::interval(FRESHNESS_CHECK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shown = (true, true);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            changed = database.changed() => if changed.is_err() { return },
        }
        let up = *database.borrow_and_update() == crate::store::DatabaseState::Up;
        let now = (up, tokend.registry.is_fresh());
        if now == shown {
            continue;
        }
        tracing::info!(
            database_up = now.0,
            introspection_serving = now.1,
            "health follows the database"
        );
        grpc::set_availability_health(&reporter, now.0, now.1, ext_authz).await;
        shown = now;
    }
}

/// Records this replica as live and re-divides the limits, every period.
async fn heartbeats(tokend: Arc<Tokend>, (period, live_for): (Duration, Duration)) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first beat happened before serving
    loop {
        ticks.tick().await;
        beat(&tokend, live_for).await;
    }
}

/// One heartbeat, on the wall clock (the domain's clock may be a test's manual one; liveness
/// is about real time).
async fn beat(tokend: &Tokend, live_for: Duration) {
    let now_us = crate::domain::clock::to_micros(time::OffsetDateTime::now_utc());
    if let Err(err) = tokend.heartbeat(now_us, live_for).await {
        tracing::warn!(error = %err, "heartbeat failed; keeping the last replica count");
    }
}

/// Writes batched last-use times every `period` until the server stops.
async fn flush_usage(tokend: Arc<Tokend>, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        tokend.flush_usage().await;
    }
}

/// The `[ext_authz]` section as the gRPC front end takes it; `None` when disabled.
fn ext_authz_config(settings: &Settings) -> anyhow::Result<Option<grpc::ExtAuthzConfig>> {
    let section = &settings.ext_authz;
    if !section.enabled {
        return Ok(None);
    }
    tracing::info!(
        routes = section.routes.len(),
        "serving envoy.service.auth.v3.Authorization: only the mesh should reach this port"
    );
    Ok(Some(grpc::ExtAuthzConfig {
        routes: Arc::new(section.routes()?),
        headers: section.header_names().map(str::to_owned),
    }))
}

/// Connects to the configured database and, unless disabled, applies migrations.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let options = ConnectOptions {
        url: settings.database.url.expose_secret().to_owned(),
        max_connections: settings.database.max_connections,
    };
    let store = store::connect(&options)
        .await
        .context("opening the database")?;
    if settings.database.migrate_on_start {
        store.migrate().await.context("migrating the database")?;
    }
    tracing::info!(backend = store.backend(), "database ready");
    Ok(store)
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
