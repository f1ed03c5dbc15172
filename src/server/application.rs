//! The `Application`: built from checked settings (store opened and migrated, keys loaded,
//! ports bound, so port 0 works in tests), then served until a shutdown future resolves,
//! draining in-flight calls for a bounded time after health has gone NOT_SERVING.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use super::connections::ConnectionGate;
use super::metrics::{self, Metrics};
use super::routing::{self, FrontEnds, Serving};
use super::tasks::{self, AbortOnDrop, Heartbeat};
use super::tls::ReloadingTls;
use crate::config::{Config, LimitsConfig, Settings};
use crate::domain::{Clock, SyncConfig, SystemClock, Tokend, run_sync};
use crate::http::probes::Probes;
use crate::{grpc, http};

/// A built, bound, not yet serving tokend.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    tokend: Arc<Tokend>,
    plan: Plan,
    /// The metrics port, when `metrics.addr` is set.
    metrics: Option<TcpListener>,
    /// TLS on the API port, when `server.tls` is set.
    tls: Option<Arc<ReloadingTls>>,
    /// The plaintext health-only port, when `server.health_addr` is set.
    health: Option<TcpListener>,
}

/// What serving needs of the config, taken from it at build time.
struct Plan {
    shutdown_grace: Duration,
    sync: SyncConfig,
    key_reload: Duration,
    usage_flush: Duration,
    heartbeat: Heartbeat,
    front_ends: FrontEnds,
    /// Request, connection and server limits.
    limits: LimitsConfig,
}

impl Plan {
    fn new(config: &Config) -> Self {
        let edge = config.ext_authz.as_ref();
        let ext_authz = edge.filter(|section| section.grpc).map(|section| {
            tracing::info!(
                routes = section.rule_count,
                "serving envoy.service.auth.v3.Authorization: only the mesh should reach this port"
            );
            grpc::ExtAuthzConfig {
                routes: Arc::new(section.routes.clone()),
                headers: section.headers.clone(),
            }
        });
        let forward_auth = edge.filter(|section| section.forward_auth).map(|section| {
            tracing::info!(
                routes = section.rule_count,
                path = http::EDGE_VERIFY_PATH,
                "serving HTTP forward auth: only the proxies should reach this port"
            );
            http::ForwardAuthConfig {
                routes: Arc::new(section.routes.clone()),
                headers: section.headers.clone(),
            }
        });
        Self {
            shutdown_grace: config.server.shutdown_grace,
            sync: config.sync(),
            key_reload: config.keys.reload,
            usage_flush: config.tokens.last_used_flush,
            heartbeat: Heartbeat {
                period: config.sync.heartbeat,
                live_for: config.sync.heartbeat_live_for(),
            },
            front_ends: FrontEnds {
                http: http::HttpConfig {
                    issuer: config.tokens.issuer.clone(),
                    public_url: config.server.public_url.clone(),
                },
                ext_authz,
                forward_auth,
                max_request_bytes: config.limits.max_request_bytes,
            },
            limits: config.limits,
        }
    }
}

impl Application {
    /// Checks `settings` (the one validation on this path) and builds on them.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// Like [`Application::build`] with a given clock (tests move time forward with one).
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        Self::from_config(settings.resolve()?, clock).await
    }

    /// Opens everything the server needs and binds its ports, from settings already checked
    /// (`main` resolves them first, to exit 64 before anything starts).
    pub async fn from_config(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let plan = Plan::new(&config);
        let mut domain = config.domain();
        domain.key_sources = crate::outbound::key_sources(
            &config.federation,
            config.assertions.key_refetch_interval,
        )?;
        let tls = config
            .server
            .tls
            .as_ref()
            .map(ReloadingTls::load)
            .transpose();
        let tls = tls.context("loading the TLS files")?;
        domain.client_ca = tls.as_ref().and_then(ReloadingTls::client_ca);
        let store = super::open_store(&config.database).await?;
        let tokend = Tokend::open(store, config.keys.keks.load()?, domain, clock)
            .await
            .context("loading signing keys")?;
        let addr = config.server.addr;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        Ok(Self {
            local_addr: listener.local_addr()?,
            listener,
            tokend: Arc::new(tokend),
            plan,
            health: bind(config.server.health_addr, "the health port").await?,
            metrics: bind(config.metrics_addr, "the metrics port").await?,
            tls,
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
        let Self {
            listener,
            local_addr,
            tokend,
            plan,
            metrics,
            tls,
            health: health_port,
        } = self;
        let (reporter, health) = tonic_health::server::health_reporter();
        let probes = Probes::new(&reporter, grpc::INTROSPECTION_SERVICE);
        let with_ext_authz = plan.front_ends.ext_authz.is_some();
        grpc::set_health(&reporter, ServingStatus::Serving, with_ext_authz).await;
        // The health-only port answers with the same statuses until the server has stopped.
        let _health_port = health_port.map(|listener| {
            routing::serve_health(listener, health.clone(), probes.clone(), &plan.limits)
        });
        let routes = routing::api_routes(tokend.clone(), health, probes, &plan.front_ends)?;
        let (stopping_tx, stopping_rx) = watch::channel(false);
        let gate = ConnectionGate::new(&plan.limits);
        let metrics = serve_metrics(metrics, &tokend, &gate, &stopping_rx)?;
        let keys = tokio::spawn(tasks::maintain_keys(
            tokend.clone(),
            plan.key_reload,
            stopping_rx.clone(),
        ));
        let follow = tokio::spawn(tasks::follow_database(
            tokend.clone(),
            reporter.clone(),
            with_ext_authz,
        ));
        let signal = async move {
            shutdown.await;
            stop(follow, &reporter, with_ext_authz, stopping_tx).await;
        };
        let _background = start_background(&tokend, &plan).await;
        tracing::info!(addr = %local_addr, tls = tls.is_some(), "tokend ready");
        let (serve, _reload) =
            routing::serve_api(listener, tls, gate, &plan.limits, metrics, routes, signal);
        drain(serve, stopping_rx, plan.shutdown_grace).await?;
        keys.abort();
        tokend.leave().await;
        let written = tokend.flush_usage().await;
        tracing::info!(last_used_written = written, "stopped");
        Ok(())
    }
}

/// Starts the metrics port, when it is bound, with the connection gate's instruments beside
/// the domain's; the layer of the API port counts into the same registry.
fn serve_metrics(
    listener: Option<TcpListener>,
    tokend: &Arc<Tokend>,
    gate: &ConnectionGate,
    stopping: &watch::Receiver<bool>,
) -> anyhow::Result<Option<Arc<Metrics>>> {
    let Some(listener) = listener else {
        return Ok(None);
    };
    let metrics = Arc::new(Metrics::new(tokend.clone(), &http::ROUTES)?);
    for collector in gate.collectors() {
        metrics.register(collector)?;
    }
    metrics::spawn(listener, metrics.clone(), stopping.clone())?;
    Ok(Some(metrics))
}

/// Binds `addr` when it is set.
async fn bind(addr: Option<SocketAddr>, what: &str) -> anyhow::Result<Option<TcpListener>> {
    match addr {
        Some(addr) => Ok(Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {what} {addr}"))?,
        )),
        None => Ok(None),
    }
}

/// The tasks that run for as long as the server does: the sync loop (this replica's view of
/// clients and revocations), writing last-use times, and heartbeats. The first heartbeat is
/// counted before serving, so the first calls already get this replica's share of the limits.
async fn start_background(tokend: &Arc<Tokend>, plan: &Plan) -> [AbortOnDrop; 3] {
    let sync = tokio::spawn(run_sync(tokend.registry.clone(), plan.sync));
    let sync = AbortOnDrop(sync);
    let usage = tokio::spawn(tasks::flush_usage(tokend.clone(), plan.usage_flush));
    let usage = AbortOnDrop(usage);
    tasks::beat(tokend, plan.heartbeat.live_for).await;
    let heartbeat = tokio::spawn(tasks::heartbeats(tokend.clone(), plan.heartbeat));
    [sync, usage, AbortOnDrop(heartbeat)]
}

/// Shutdown has begun: health stops following the database (and is awaited, so it cannot set
/// a service back to SERVING), every service turns NOT_SERVING, and the drain starts.
async fn stop(
    follow: tokio::task::JoinHandle<()>,
    reporter: &HealthReporter,
    with_ext_authz: bool,
    stopping: watch::Sender<bool>,
) {
    tracing::info!("shutting down: health NOT_SERVING, draining in-flight calls");
    follow.abort();
    let _ = follow.await;
    grpc::set_health(reporter, ServingStatus::NotServing, with_ext_authz).await;
    let _ = stopping.send(true);
}

/// Waits for the server to finish its calls in flight, or for `grace` after shutdown began.
async fn drain(
    serve: Serving,
    mut stopping: watch::Receiver<bool>,
    grace: Duration,
) -> anyhow::Result<()> {
    let deadline = async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = serve => result.context("serving gRPC")?,
        () = deadline => tracing::warn!(grace_secs = grace.as_secs(), "drain timed out; closing remaining calls"),
    }
    Ok(())
}
