//! What the domain counts as it works: tokens issued, introspection answers, refresh-token
//! reuse, cache hits, the argon2 queue. Plain Prometheus instruments (atomics: an increment
//! costs a few nanoseconds, whether or not anything scrapes them); `crate::server::metrics`
//! registers them under their names and serves them. No label takes a value from a request, so
//! no series grows without bound.

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};

/// Buckets of latency histograms: 50 µs to 1 s, about three per decade.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];

/// The domain's counters and gauges: the labelled children are resolved once here, so
/// counting costs no label lookup.
#[derive(Clone)]
pub struct Stats {
    /// Access tokens issued as JWTs (IssueToken, RefreshToken, ExchangeToken).
    pub issued_jwt: IntCounter,
    /// Access tokens issued as opaque tokens.
    pub issued_opaque: IntCounter,
    /// Introspection answers `active: true`.
    pub introspected_active: IntCounter,
    /// Introspection answers `active: false`.
    pub introspected_inactive: IntCounter,
    /// Spent refresh tokens presented again outside the retry window (the family was revoked).
    pub refresh_reuse: IntCounter,
    /// ext_authz Checks refused over an API quota (HTTP 429).
    pub edge_throttled: IntCounter,
    /// Verified-token cache (Introspect): hits and misses.
    pub token_cache_hits: IntCounter,
    pub token_cache_misses: IntCounter,
    /// Verified-secret cache (IssueToken): hits and misses.
    pub secret_cache_hits: IntCounter,
    pub secret_cache_misses: IntCounter,
    /// Client authentications that passed, by method; failed, by kind of proof.
    authentications: IntCounterVec,
    authentication_failures: IntCounterVec,
    /// argon2 jobs waiting for a hashing thread.
    pub argon2_queued: IntGauge,
    /// How long argon2 jobs waited for a hashing thread.
    pub argon2_wait: Histogram,
    families: (IntCounterVec, IntCounterVec, IntCounterVec),
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// Fresh instruments, all zero.
    pub fn new() -> Self {
        let family = |name: &str, help: &str, label: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), label).expect("a valid counter family")
        };
        let issued = family(
            "tokend_tokens_issued_total",
            "Access tokens issued (IssueToken, RefreshToken, ExchangeToken, and over HTTP), by the client's token format.",
            &["format"],
        );
        let introspections = family(
            "tokend_introspections_total",
            "Introspection answers (gRPC, HTTP and Envoy ext_authz), by whether the token was active.",
            &["answer"],
        );
        let caches = family(
            "tokend_cache_lookups_total",
            "Lookups in the verified-token cache (Introspect) and the verified-secret cache (IssueToken), by result.",
            &["cache", "result"],
        );
        let authentications = family(
            "tokend_client_authentications_total",
            "Client authentications at the token, revocation and introspection endpoints that proved the client, by method (client_secret, private_key_jwt, federated_jwt, ...).",
            &["method"],
        );
        let authentication_failures = family(
            "tokend_client_authentication_failures_total",
            "Client authentications whose proof failed (invalid_client), by kind of proof (secret, assertion, ...).",
            &["proof"],
        );
        let child = |family: &IntCounterVec, values: &[&str]| family.with_label_values(values);
        Self {
            issued_jwt: child(&issued, &["jwt"]),
            issued_opaque: child(&issued, &["opaque"]),
            introspected_active: child(&introspections, &["active"]),
            introspected_inactive: child(&introspections, &["inactive"]),
            refresh_reuse: IntCounter::new(
                "tokend_refresh_reuse_detected_total",
                "Spent refresh tokens presented again outside the retry window; each revoked its whole family.",
            )
            .expect("a valid counter"),
            edge_throttled: IntCounter::new(
                "tokend_ext_authz_throttled_total",
                "Envoy ext_authz Checks refused with HTTP 429 over a client's api_rate_limit_per_minute or a route's requests_per_minute.",
            )
            .expect("a valid counter"),
            token_cache_hits: child(&caches, &["verified_token", "hit"]),
            token_cache_misses: child(&caches, &["verified_token", "miss"]),
            secret_cache_hits: child(&caches, &["verified_secret", "hit"]),
            secret_cache_misses: child(&caches, &["verified_secret", "miss"]),
            argon2_queued: IntGauge::new(
                "tokend_argon2_queue_depth",
                "argon2 verifications and hashes waiting for a hashing thread.",
            )
            .expect("a valid gauge"),
            argon2_wait: Histogram::with_opts(
                HistogramOpts::new(
                    "tokend_argon2_queue_wait_seconds",
                    "How long argon2 jobs waited for a hashing thread.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )
            .expect("a valid histogram"),
            authentications,
            authentication_failures,
            families: (issued, introspections, caches),
        }
    }

    /// A client proved itself by `method` (one of a fixed set of names, never a request's text).
    pub fn authenticated(&self, method: &'static str) {
        self.authentications.with_label_values(&[method]).inc();
    }

    /// A client's proof of kind `proof` failed.
    pub fn authentication_failed(&self, proof: &'static str) {
        self.authentication_failures
            .with_label_values(&[proof])
            .inc();
    }

    /// Everything to register, once, in a Prometheus registry.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.families.0.clone()),
            Box::new(self.families.1.clone()),
            Box::new(self.families.2.clone()),
            Box::new(self.authentications.clone()),
            Box::new(self.authentication_failures.clone()),
            Box::new(self.refresh_reuse.clone()),
            Box::new(self.edge_throttled.clone()),
            Box::new(self.argon2_queued.clone()),
            Box::new(self.argon2_wait.clone()),
        ]
    }
}
