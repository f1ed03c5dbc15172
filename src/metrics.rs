//! Prometheus metrics, served in the text format on a port of their own (`metrics.addr`), never
//! on the API port.
//!
//! Three sources:
//! - requests, counted by a tower layer around every route of the API port: gRPC calls by
//!   service, method and status code (read from the headers of a trailers-only answer, else from
//!   the trailers at the end of the stream), HTTP routes by route and status, and a latency
//!   histogram per method or route;
//! - what the domain counts as it works (`domain::Stats`: tokens issued, introspection answers,
//!   refresh reuse, cache hits, the argon2 queue);
//! - gauges read at scrape time from the replica's state (deny list, caches, change-log
//!   staleness, the database and its pool, signing keys).
//!
//! Every label value comes from a fixed set: services and methods from the descriptor set
//! (anything else is `unknown`), routes from the router's paths (anything else is `other`),
//! status codes, token formats, key states. No client id, token, address or path from a
//! request ever becomes a label, so no series grows without bound.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use prometheus::core::Collector;
use prometheus::{
    Encoder as _, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use prost::Message as _;

use crate::domain::{KeyState, LATENCY_BUCKETS, Tokend};
use crate::store::DatabaseState;

/// Path the metrics are served at.
pub const METRICS_PATH: &str = "/metrics";

/// gRPC status code names, by number, as the gRPC status-code document spells them.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];
const CANCELLED: usize = 1;
const UNKNOWN: usize = 2;

/// gRPC methods served besides tokend's own (whose come from its descriptor set).
const OTHER_METHODS: [(&str, &str); 5] = [
    ("grpc.health.v1.Health", "Check"),
    ("grpc.health.v1.Health", "Watch"),
    (
        "grpc.reflection.v1.ServerReflection",
        "ServerReflectionInfo",
    ),
    (
        "grpc.reflection.v1alpha.ServerReflection",
        "ServerReflectionInfo",
    ),
    ("envoy.service.auth.v3.Authorization", "Check"),
];

/// One gRPC method's series: its latency histogram and a counter per status code, each
/// created on first use (so a scrape shows the methods called and the codes that happened,
/// not empty series for every method there is).
struct GrpcSeries {
    service: String,
    method: String,
    durations: HistogramVec,
    duration: OnceLock<Histogram>,
    requests: IntCounterVec,
    by_code: [OnceLock<IntCounter>; 17],
}

impl GrpcSeries {
    fn observe(&self, code: usize, elapsed: Duration) {
        let code = if code < CODE_NAMES.len() {
            code
        } else {
            UNKNOWN
        };
        self.duration
            .get_or_init(|| {
                self.durations
                    .with_label_values(&[&self.service, &self.method])
            })
            .observe(elapsed.as_secs_f64());
        self.by_code[code]
            .get_or_init(|| {
                self.requests
                    .with_label_values(&[&self.service, &self.method, CODE_NAMES[code]])
            })
            .inc();
    }
}

/// What a request is, for counting.
enum Endpoint {
    Grpc(Arc<GrpcSeries>),
    Http(&'static str),
}

/// A replica's metrics: its own registry (so every server in one process, as in the tests, has
/// its own), the request series, and the scrape-time gauges.
pub struct Metrics {
    registry: Registry,
    tokend: Arc<Tokend>,
    grpc: HashMap<String, Arc<GrpcSeries>>,
    unknown_grpc: Arc<GrpcSeries>,
    http_routes: Vec<&'static str>,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    deny_list: IntGauge,
    clients: IntGauge,
    cache_entries: IntGaugeVec,
    staleness: Gauge,
    database: IntGaugeVec,
    pool: IntGaugeVec,
    pool_max: IntGauge,
    keys: IntGaugeVec,
}

impl Metrics {
    /// Registers everything for `tokend`; `http_routes` are the API port's HTTP paths.
    pub fn new(tokend: Arc<Tokend>, http_routes: &[&'static str]) -> anyhow::Result<Self> {
        let registry = Registry::new();
        let register = |c: Box<dyn Collector>| registry.register(c).context("registering a metric");
        for collector in tokend.stats.collectors() {
            register(collector)?;
        }
        #[cfg(target_os = "linux")]
        register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        let grpc_requests = IntCounterVec::new(
            Opts::new(
                "tokend_grpc_requests_total",
                "gRPC calls answered, by service, method and status code.",
            ),
            &["service", "method", "code"],
        )?;
        let grpc_duration = HistogramVec::new(
            HistogramOpts::new(
                "tokend_grpc_request_duration_seconds",
                "Time from a gRPC call's arrival to its status, by service and method.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["service", "method"],
        )?;
        let series = |service: &str, method: &str| {
            Arc::new(GrpcSeries {
                service: service.to_owned(),
                method: method.to_owned(),
                durations: grpc_duration.clone(),
                duration: OnceLock::new(),
                requests: grpc_requests.clone(),
                by_code: Default::default(),
            })
        };
        let mut grpc = HashMap::new();
        for (service, method) in grpc_methods()?
            .iter()
            .map(|(s, m)| (s.as_str(), m.as_str()))
            .chain(OTHER_METHODS)
        {
            grpc.insert(format!("/{service}/{method}"), series(service, method));
        }
        let unknown_grpc = series("unknown", "unknown");
        register(Box::new(grpc_requests))?;
        register(Box::new(grpc_duration))?;

        let http_requests = IntCounterVec::new(
            Opts::new(
                "tokend_http_requests_total",
                "Plain HTTP requests on the API port (OAuth 2.0 endpoints, JWKS, metadata), by route and status.",
            ),
            &["route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "tokend_http_request_duration_seconds",
                "Time from an HTTP request's arrival to its response head, by route.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )?;
        register(Box::new(http_requests.clone()))?;
        register(Box::new(http_duration.clone()))?;

        let gauge = |name: &str, help: &str| -> anyhow::Result<IntGauge> {
            let g = IntGauge::new(name, help)?;
            register(Box::new(g.clone()))?;
            Ok(g)
        };
        let gauges = |name: &str, help: &str, labels: &[&str]| -> anyhow::Result<IntGaugeVec> {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            register(Box::new(g.clone()))?;
            Ok(g)
        };
        let deny_list = gauge(
            "tokend_deny_list_entries",
            "Revoked access tokens and refresh families this replica holds in memory.",
        )?;
        let clients = gauge(
            "tokend_clients",
            "Clients this replica holds in memory (every tenant).",
        )?;
        let cache_entries = gauges(
            "tokend_cache_entries",
            "Entries in the verified-token and verified-secret caches.",
            &["cache"],
        )?;
        let staleness = Gauge::new(
            "tokend_changelog_staleness_seconds",
            "Seconds since this replica last read the change log in full: how far behind the database its view may be.",
        )?;
        register(Box::new(staleness.clone()))?;
        let database = gauges(
            "tokend_database_state",
            "1 for the state the database is in as this replica's sync loop last found: up, recovering (answering again, catching up) or down.",
            &["state"],
        )?;
        let pool = gauges(
            "tokend_db_pool_connections",
            "Database connections in use and idle, and calls waiting for one.",
            &["state"],
        )?;
        let pool_max = gauge(
            "tokend_db_pool_max_connections",
            "The most connections the pool opens (database.max_connections).",
        )?;
        let keys = gauges(
            "tokend_signing_keys",
            "Signing keys this replica holds, by state.",
            &["state"],
        )?;
        let build = gauges(
            "tokend_build_info",
            "1, labelled with the version and the database backend.",
            &["version", "backend"],
        )?;
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), tokend.backend()])
            .set(1);
        Ok(Self {
            registry,
            tokend,
            grpc,
            unknown_grpc,
            http_routes: http_routes.to_vec(),
            http_requests,
            http_duration,
            deny_list,
            clients,
            cache_entries,
            staleness,
            database,
            pool,
            pool_max,
            keys,
        })
    }

    /// Every metric in the Prometheus text format, the gauges read now.
    pub fn render(&self) -> String {
        self.refresh();
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %err, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    fn refresh(&self) {
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let sizes = self.tokend.registry.sizes();
        self.deny_list.set(count(sizes.revocations));
        self.clients.set(count(sizes.clients));
        let cache =
            |name: &str, n: usize| self.cache_entries.with_label_values(&[name]).set(count(n));
        cache("verified_token", sizes.cached_tokens);
        cache("verified_secret", sizes.cached_secrets);
        self.staleness
            .set(self.tokend.registry.staleness().as_secs_f64());
        let state = self.tokend.database_state();
        for (name, value) in [
            ("up", DatabaseState::Up),
            ("recovering", DatabaseState::Recovering),
            ("down", DatabaseState::Down),
        ] {
            self.database
                .with_label_values(&[name])
                .set(i64::from(state == value));
        }
        let pool = self.tokend.pool_stats();
        for (name, n) in [
            ("in_use", pool.in_use),
            ("idle", pool.idle),
            ("waiting", pool.waiting),
        ] {
            self.pool.with_label_values(&[name]).set(count(n));
        }
        self.pool_max.set(i64::from(pool.max));
        let states = self.tokend.key_states();
        for (name, state) in [
            ("pending", KeyState::Pending),
            ("active", KeyState::Active),
            ("retiring", KeyState::Retiring),
            ("retired", KeyState::Retired),
        ] {
            let n = states.iter().filter(|s| **s == state).count();
            self.keys.with_label_values(&[name]).set(count(n));
        }
    }

    fn endpoint(&self, request: &http::Request<impl Sized>) -> Endpoint {
        let path = request.uri().path();
        if let Some(series) = self.grpc.get(path) {
            return Endpoint::Grpc(series.clone());
        }
        if crate::transport::is_grpc(request.headers()) {
            return Endpoint::Grpc(self.unknown_grpc.clone());
        }
        let route = self
            .http_routes
            .iter()
            .find(|r| **r == path)
            .copied()
            .unwrap_or("other");
        Endpoint::Http(route)
    }

    fn observe_http(&self, route: &str, status: http::StatusCode, elapsed: Duration) {
        self.http_duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
        self.http_requests
            .with_label_values(&[route, status.as_str()])
            .inc();
    }
}

/// Every (service, method) of tokend's own API, from its descriptor set.
fn grpc_methods() -> anyhow::Result<Vec<(String, String)>> {
    let set = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
        .context("decoding tokend's descriptor set")?;
    let mut methods = Vec::new();
    for file in &set.file {
        for service in &file.service {
            let name = format!("{}.{}", file.package(), service.name());
            for method in &service.method {
                methods.push((name.clone(), method.name().to_owned()));
            }
        }
    }
    Ok(methods)
}

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

/// Counts every request of the API port (when metrics are on; otherwise passes them through).
#[derive(Clone)]
pub struct RequestMetricsLayer {
    metrics: Option<Arc<Metrics>>,
}

impl RequestMetricsLayer {
    /// Counting into `metrics`, or not at all.
    pub fn new(metrics: Option<Arc<Metrics>>) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`RequestMetricsLayer`] wraps around the routes.
#[derive(Clone)]
pub struct RequestMetrics<S> {
    inner: S,
    metrics: Option<Arc<Metrics>>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, ResB> tower::Service<http::Request<B>> for RequestMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResB: http_body::Body + Unpin + Send + 'static,
{
    type Response = http::Response<Observed<ResB>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let Some(metrics) = self.metrics.clone() else {
            let answer = self.inner.call(request);
            return Box::pin(async move { Ok(answer.await?.map(Observed::passthrough)) });
        };
        let endpoint = metrics.endpoint(&request);
        let start = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            match endpoint {
                Endpoint::Http(route) => {
                    metrics.observe_http(route, response.status(), start.elapsed());
                    Ok(response.map(Observed::passthrough))
                }
                // A trailers-only answer (every error tonic returns) has its status in the head.
                Endpoint::Grpc(series) => match grpc_status(response.headers()) {
                    Some(code) => {
                        series.observe(code, start.elapsed());
                        Ok(response.map(Observed::passthrough))
                    }
                    None => Ok(response.map(|body| Observed {
                        inner: body,
                        pending: Some((series, start)),
                    })),
                },
            }
        })
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<usize> {
    let value = headers.get("grpc-status")?;
    Some(
        std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(UNKNOWN),
    )
}

/// A response body that records its call's status when the trailers pass (or, if the stream
/// ends without them or is dropped early, UNKNOWN or CANCELLED).
pub struct Observed<B> {
    inner: B,
    pending: Option<(Arc<GrpcSeries>, Instant)>,
}

impl<B> Observed<B> {
    fn passthrough(inner: B) -> Self {
        Self {
            inner,
            pending: None,
        }
    }

    fn finish(&mut self, code: usize) {
        if let Some((series, start)) = self.pending.take() {
            series.observe(code, start.elapsed());
        }
    }
}

impl<B> Drop for Observed<B> {
    fn drop(&mut self) {
        self.finish(CANCELLED);
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for Observed<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if this.pending.is_some() {
            match &frame {
                Some(Ok(frame)) => {
                    if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                        this.finish(code);
                    }
                }
                Some(Err(_)) | None => this.finish(UNKNOWN),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
