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
//!
//! Four files: `registry` (one registry per replica, the request series), `gauges` (read at
//! scrape time), `layer` (the tower layer counting each request of the API port) and
//! `endpoint` (the `/metrics` port).
//! `server` builds the registry, puts the layer around the API routes and serves the endpoint.

mod endpoint;
mod gauges;
mod layer;
mod registry;

pub use endpoint::{METRICS_PATH, serve, spawn};
pub use layer::{Observed, RequestMetrics, RequestMetricsLayer};
pub use registry::Metrics;
