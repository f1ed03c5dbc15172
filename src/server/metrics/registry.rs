//! The replica's registry: the request series the layer records into, the domain's counters,
//! and the gauges read from the replica's state at scrape time.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use prometheus::core::Collector;
use prometheus::{
    Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts,
    Registry, TextEncoder,
};
use prost::Message as _;

use super::gauges::Gauges;
use crate::domain::{LATENCY_BUCKETS, Tokend};

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
/// The code recorded for a call whose answer was dropped before its status.
pub(super) const CANCELLED: usize = 1;
/// The code recorded for a status that is missing or not a number.
pub(super) const UNKNOWN: usize = 2;

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
pub(super) struct GrpcSeries {
    service: String,
    method: String,
    durations: HistogramVec,
    duration: OnceLock<Histogram>,
    requests: IntCounterVec,
    by_code: [OnceLock<IntCounter>; 17],
}

impl GrpcSeries {
    pub(super) fn observe(&self, code: usize, elapsed: Duration) {
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
pub(super) enum Endpoint {
    Grpc(Arc<GrpcSeries>),
    Http(&'static str),
}

/// A replica's metrics: its own registry (so every server in one process, as in the tests, has
/// its own), the request series, and the scrape-time gauges.
pub struct Metrics {
    registry: Registry,
    tokend: Arc<Tokend>,
    requests: RequestSeries,
    gauges: Gauges,
}

/// The request series the layer records into, and the labels a request may get.
struct RequestSeries {
    grpc: SeriesByPath,
    unknown_grpc: Arc<GrpcSeries>,
    http_routes: Vec<&'static str>,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
}

/// Each gRPC method's series by its path, `/service/method`.
type SeriesByPath = HashMap<String, Arc<GrpcSeries>>;

/// Registers a collector in the replica's registry.
pub(super) type Register<'a> = dyn Fn(Box<dyn Collector>) -> anyhow::Result<()> + 'a;

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
        let requests = RequestSeries::new(&register, http_routes)?;
        let gauges = Gauges::new(&register, &tokend)?;
        Ok(Self {
            registry,
            tokend,
            requests,
            gauges,
        })
    }

    /// Registers a collector kept outside the domain and this module (the API port's
    /// connection counts).
    pub fn register(&self, collector: Box<dyn Collector>) -> anyhow::Result<()> {
        self.registry
            .register(collector)
            .context("registering a metric")
    }

    /// Every metric in the Prometheus text format, the gauges read now.
    pub fn render(&self) -> String {
        self.gauges.refresh(&self.tokend);
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %err, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// The series a request is counted in: its gRPC method (`unknown` for a gRPC call to no
    /// method of ours), else its HTTP route (`other` for any path not routed).
    pub(super) fn endpoint(&self, request: &http::Request<impl Sized>) -> Endpoint {
        let path = request.uri().path();
        if let Some(series) = self.requests.grpc.get(path) {
            return Endpoint::Grpc(series.clone());
        }
        if crate::transport::is_grpc(request.headers()) {
            return Endpoint::Grpc(self.requests.unknown_grpc.clone());
        }
        let route = self
            .requests
            .http_routes
            .iter()
            .find(|r| **r == path)
            .copied()
            .unwrap_or("other");
        Endpoint::Http(route)
    }

    /// Records one answered HTTP request.
    pub(super) fn observe_http(&self, route: &str, status: http::StatusCode, elapsed: Duration) {
        self.requests
            .http_duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
        self.requests
            .http_requests
            .with_label_values(&[route, status.as_str()])
            .inc();
    }
}

impl RequestSeries {
    fn new(register: &Register<'_>, http_routes: &[&'static str]) -> anyhow::Result<Self> {
        let (grpc, unknown_grpc) = grpc_series(register)?;
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
        Ok(Self {
            grpc,
            unknown_grpc,
            http_routes: http_routes.to_vec(),
            http_requests,
            http_duration,
        })
    }
}

/// One series per gRPC method served, by path (`/service/method`), and the `unknown` one.
fn grpc_series(register: &Register<'_>) -> anyhow::Result<(SeriesByPath, Arc<GrpcSeries>)> {
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
    Ok((grpc, unknown_grpc))
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
