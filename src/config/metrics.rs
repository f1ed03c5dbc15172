//! `[metrics]`: where Prometheus scrapes. The one field is typed as it is read, so the section
//! needs no checked form of its own: `Config::metrics_addr` is the value.

use std::net::SocketAddr;

use serde::Deserialize;

/// `[metrics]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Where Prometheus metrics are served (`GET /metrics`), e.g. `0.0.0.0:9090`; a port of
    /// their own, never the API port. Unset: no metrics port, and requests are not counted.
    pub addr: Option<SocketAddr>,
}
