//! `[limits]`: how much one request, one connection and the whole server may take.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSettings {
    /// Largest gRPC request message, bytes, decoded. The largest valid request, a CreateClient
    /// with every list and the metadata full, is about 170 KiB; the default leaves room above
    /// it. A bigger message is refused with OUT_OF_RANGE before it is parsed. (The HTTP
    /// endpoints take forms of at most 16 KiB.)
    pub max_request_bytes: usize,
    /// Largest HTTP/2 header list (metadata) a request may carry, bytes.
    pub max_header_list_bytes: u32,
    /// HTTP/2 streams (calls) one connection may have open at once; a client that opens more
    /// gets them refused (REFUSED_STREAM, which gRPC clients retry).
    pub max_concurrent_streams: u32,
    /// Calls in progress on the whole server; beyond it a call is answered at once with
    /// RESOURCE_EXHAUSTED (HTTP: 503 with Retry-After) instead of queueing. 0: no limit.
    pub max_requests_in_flight: usize,
    /// Longest a call may take to be answered, milliseconds; then DEADLINE_EXCEEDED (HTTP:
    /// 503). Streams (health Watch) are bounded only until their first answer.
    pub request_timeout_ms: u64,
    /// Seconds between HTTP/2 pings on an idle connection; 0: no pings.
    pub keepalive_interval_secs: u64,
    /// Seconds a ping may go unanswered before the connection is closed.
    pub keepalive_timeout_secs: u64,
    /// Seconds after which a connection is asked to go away (GOAWAY; calls in flight get
    /// `request_timeout_ms` to finish, then it is closed), so clients reconnect and spread
    /// over replicas that came up since. 0: never.
    pub max_connection_age_secs: u64,
    /// Seconds a new connection has to complete its first request head (HTTP/1.1) or the
    /// HTTP/2 connection preface, counted from accept (TLS handshake included); then it is
    /// closed. A socket that sends nothing otherwise holds a file descriptor forever.
    pub first_request_timeout_secs: u64,
    /// Open connections from one source address (the TCP peer, not `x-forwarded-for`);
    /// beyond it a new one is closed at once. Behind a mesh sidecar or SNAT every caller
    /// shares one address, so the default is high. 0: no limit.
    pub max_connections_per_address: usize,
    /// Open connections on the whole port; beyond it a new one is closed at once. 0: no limit.
    pub max_connections: usize,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        Self {
            max_request_bytes: 192 * 1024,
            max_header_list_bytes: 16 * 1024,
            max_concurrent_streams: 256,
            max_requests_in_flight: 4096,
            request_timeout_ms: 10_000,
            keepalive_interval_secs: 30,
            keepalive_timeout_secs: 10,
            max_connection_age_secs: 0,
            first_request_timeout_secs: 10,
            max_connections_per_address: 4096,
            max_connections: 16_384,
        }
    }
}

/// `[limits]`, checked, with the periods typed (`None` where 0 means "off").
#[derive(Debug, Clone, Copy)]
pub struct LimitsConfig {
    pub max_request_bytes: usize,
    pub max_header_list_bytes: u32,
    pub max_concurrent_streams: u32,
    /// Calls in progress on the whole server; 0: no limit.
    pub max_requests_in_flight: usize,
    /// Longest a call may take to be answered.
    pub request_timeout: Duration,
    /// HTTP/2 pings on an idle connection this often; `None`: no pings.
    pub keepalive_interval: Option<Duration>,
    /// How long a ping may go unanswered.
    pub keepalive_timeout: Duration,
    /// When a connection is asked to go away; `None`: never.
    pub max_connection_age: Option<Duration>,
    /// How long a new connection has to complete its first request head or preface.
    pub first_request_timeout: Duration,
    /// Open connections from one source address; 0: no limit.
    pub max_connections_per_address: usize,
    /// Open connections on the port; 0: no limit.
    pub max_connections: usize,
}

impl LimitsSettings {
    pub(super) fn resolve(&self) -> Result<LimitsConfig, ConfigError> {
        self.check()?;
        let secs = |n: u64| (n > 0).then(|| Duration::from_secs(n));
        Ok(LimitsConfig {
            max_request_bytes: self.max_request_bytes,
            max_header_list_bytes: self.max_header_list_bytes,
            max_concurrent_streams: self.max_concurrent_streams,
            max_requests_in_flight: self.max_requests_in_flight,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            keepalive_interval: secs(self.keepalive_interval_secs),
            keepalive_timeout: Duration::from_secs(self.keepalive_timeout_secs),
            max_connection_age: secs(self.max_connection_age_secs),
            first_request_timeout: Duration::from_secs(self.first_request_timeout_secs),
            max_connections_per_address: self.max_connections_per_address,
            max_connections: self.max_connections,
        })
    }

    fn check(&self) -> Result<(), ConfigError> {
        let check = |ok: bool, what: &str| ConfigError::unless(ok, "limits", what);
        check(
            (16 * 1024..=64 * 1024 * 1024).contains(&self.max_request_bytes),
            "max_request_bytes must be between 16384 and 67108864",
        )?;
        check(
            (4096..=1024 * 1024).contains(&self.max_header_list_bytes),
            "max_header_list_bytes must be between 4096 and 1048576",
        )?;
        check(
            (1..=65_536).contains(&self.max_concurrent_streams),
            "max_concurrent_streams must be between 1 and 65536",
        )?;
        check(
            (100..=600_000).contains(&self.request_timeout_ms),
            "request_timeout_ms must be between 100 and 600000",
        )?;
        check(
            self.keepalive_interval_secs <= 3600,
            "keepalive_interval_secs must be at most 3600",
        )?;
        check(
            (1..=600).contains(&self.keepalive_timeout_secs),
            "keepalive_timeout_secs must be between 1 and 600",
        )?;
        check(
            (1..=300).contains(&self.first_request_timeout_secs),
            "first_request_timeout_secs must be between 1 and 300",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_settings_resolve_and_are_checked() {
        let limits = LimitsSettings::default().resolve().unwrap();
        assert_eq!(limits.first_request_timeout, Duration::from_secs(10));
        assert_eq!(limits.max_connections_per_address, 4096);
        assert_eq!(limits.max_connections, 16_384);
        for secs in [0, 301] {
            let settings = LimitsSettings {
                first_request_timeout_secs: secs,
                ..LimitsSettings::default()
            };
            let err = settings.resolve().unwrap_err().to_string();
            assert!(err.contains("limits.first_request_timeout_secs"), "{err}");
        }
    }
}
