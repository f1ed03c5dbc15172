//! tokend: a token and introspection service for machine-to-machine auth, spoken over gRPC.
//!
//! Calls flow downwards only:
//!
//! - `cli`       — command line: `serve`, `migrate`, `client create|list`, `kek rotate`,
//!   `bench`; resolves the config, then calls `server`, `domain`, or `bench`.
//! - `admin`     — `tokend admin`, the running service from a terminal: a gRPC client of the
//!   public admin API only (`proto`), like `bench`; never calls `domain` or `store`.
//! - `bench`     — `tokend bench`, a load generator: a gRPC client of any deployment through
//!   the public API only (`proto`); never calls `domain` or `store`.
//! - `config/`   — settings: defaults -> file -> `TOKEND__*` env, one file per section; each
//!   section checks its raw fields once and hands out typed values (`Config`); reads only
//!   `domain`'s value types.
//! - `server/`   — the `Application`: opens the store, loads keys, binds, serves until
//!   shutdown; routing of both front ends on one port inside its `limits` (load shedding,
//!   deadline) and `metrics` (registry, request layer, `/metrics` endpoint) layers, `tls`
//!   with reloaded files, `connections` (how many per address and in all, how soon a first
//!   request), and the background tasks; takes a `config::Config`, calls `grpc`,
//!   `http`, `domain`, `store`.
//! - `telemetry` — process-wide logs and OTLP traces (also for the commands that serve
//!   nothing), and W3C trace-context extraction per request; calls nothing of tokend's.
//! - `grpc`      — transport: thin tonic handlers, domain errors written as gRPC statuses,
//!   health, reflection, and Envoy's `ext_authz` Check when enabled; calls `transport`, `domain`.
//! - `http`      — plain HTTP on the same port: the JWKS, the OAuth 2.0 token, introspection
//!   and revocation endpoints, the RFC 8414 metadata; calls `transport`, `domain`.
//! - `transport` — what every front end and layer of the API port shares, so `server`, `grpc`
//!   and `http` never ask one another: is a request gRPC, the one presentation of a domain
//!   error (gRPC code, HTTP status, OAuth 2.0 code, retry-after, challenge), bearer tokens, the
//!   client's address behind trusted proxies; calls `domain` for its types only.
//! - `outbound`  — what tokend fetches from other servers for the domain's traits: key sets
//!   (JWKS) over HTTPS with a timeout, a size cap, no redirects and a bounded cache; calls
//!   `domain` for its types only.
//! - `proto`     — generated `tokend.v1` code and the reflection descriptor set.
//! - `domain/`   — every rule, one folder per sub-domain: `clients` (entity, admin,
//!   secrets), `token_endpoint` (the gate, typed grants, exchange, revocation, minting),
//!   `introspection` (verifying tokens, callers, Envoy's verdict, the replica's in-memory view
//!   and its sync loop), `keys`, `policy` (allow-lists, rate limits, lockout), `audit`;
//!   `Tokend` wires them; calls `store` through traits.
//! - `store`     — persistence traits with Postgres and SQLite implementations; no policy.

#![forbid(unsafe_code)]

pub mod admin;
pub mod bench;
pub mod cli;
pub mod config;
pub mod domain;
pub mod grpc;
pub mod http;
pub mod outbound;
pub mod proto;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod transport;
