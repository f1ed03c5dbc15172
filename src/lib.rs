//! tokend: a token and introspection service for machine-to-machine auth, spoken over gRPC.
//!
//! Calls flow downwards only:
//!
//! - `cli`       — command line: `serve`, `migrate`, `client create|list`, `kek rotate`,
//!   `bench`; calls `startup`/`domain`, or `bench`.
//! - `bench`     — `tokend bench`, a load generator: a gRPC client of any deployment through
//!   the public API only (`proto`); never calls `domain` or `store`.
//! - `startup`   — builds the `Application` (store, keys, listener) and serves until shutdown.
//! - `config`    — settings: defaults -> file -> `TOKEND__*` env; validation; the KEKs.
//! - `telemetry` — logs, OTLP traces, W3C trace-context extraction per request.
//! - `tls`       — TLS and client certificates on the API port, files reloaded when changed.
//! - `limits`    — load shedding and the server-side deadline around every route.
//! - `metrics`   — Prometheus: a layer counting every request of the API port, the domain's
//!   counters, gauges read at scrape time; served on `metrics.addr` only.
//! - `transport` — what every layer of the API port asks of a request on the wire (is it
//!   gRPC?), so `limits`, `metrics`, `grpc` and `http` never ask one another.
//! - `grpc`      — transport: thin tonic handlers, the one error->Status table, health,
//!   reflection, and Envoy's `ext_authz` Check when enabled; calls `domain`.
//! - `http`      — plain HTTP on the same port: the JWKS, the OAuth 2.0 token, introspection
//!   and revocation endpoints, the RFC 8414 metadata; one domain-error table; calls `domain`.
//! - `proto`     — generated `tokend.v1` code and the reflection descriptor set.
//! - `domain`    — every rule: clients, secrets, scopes, keys, issuing and introspecting
//!   tokens, token exchange (`exchange`), the edge verdict for Envoy (`edge`), client policy (allow-lists, rate limits,
//!   lockout) and the audit trail; calls `store` through traits.
//! - `store`     — persistence traits with Postgres and SQLite implementations; no policy.

#![forbid(unsafe_code)]

pub mod bench;
pub mod cli;
pub mod config;
pub mod domain;
pub mod grpc;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod proto;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod transport;
