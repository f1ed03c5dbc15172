//! `[sync]`: how each replica keeps its in-memory view of clients and revocations current, and
//! how it tells the others it is alive.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// `[sync]`: how each replica keeps its in-memory view of clients and revocations current.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncSettings {
    /// Longest time between two reads of the change log, milliseconds. On Postgres a
    /// notification wakes the reader at once; this bounds the delay if one is lost. SQLite has
    /// no notifications: this is how fast another process's writes are seen.
    pub poll_interval_ms: u64,
    /// How often expired revocations, tokens and old change-log rows are purged, seconds.
    pub purge_interval_secs: u64,
    /// How often each replica records that it is alive, milliseconds. Rate limits and the
    /// lockout threshold are divided by the replicas that did so within three periods.
    pub heartbeat_ms: u64,
    /// How long after its last successful read of the change log a replica still answers
    /// `Introspect` and issues tokens from memory (the database unreachable); after that it
    /// answers UNAVAILABLE rather than trust a deny list that may miss revocations. 0: no
    /// limit.
    pub max_staleness_secs: u64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            poll_interval_ms: 1000,
            purge_interval_secs: 300,
            heartbeat_ms: 5000,
            max_staleness_secs: 300,
        }
    }
}

/// `[sync]`, checked.
#[derive(Debug, Clone, Copy)]
pub struct SyncTiming {
    /// Longest wait between two reads of the change log.
    pub poll_interval: Duration,
    /// How often expired rows are purged.
    pub purge_interval: Duration,
    /// How often this replica records that it is alive.
    pub heartbeat: Duration,
    /// How long a replica answers from memory without reading the change log; `None`: no limit.
    pub max_staleness: Option<Duration>,
}

impl SyncTiming {
    /// How long a heartbeat counts as live: three periods, so one late beat does not change
    /// the replica count (and every limit divided by it).
    pub fn heartbeat_live_for(&self) -> Duration {
        self.heartbeat * 3
    }
}

impl SyncSettings {
    pub(super) fn resolve(&self) -> Result<SyncTiming, ConfigError> {
        let check = |ok: bool, message: &str| ConfigError::unless(ok, "sync", message);
        check(
            (10..=60_000).contains(&self.poll_interval_ms),
            "poll_interval_ms must be between 10 and 60000",
        )?;
        check(
            (100..=60_000).contains(&self.heartbeat_ms),
            "heartbeat_ms must be between 100 and 60000",
        )?;
        check(
            self.max_staleness_secs == 0
                || self.max_staleness_secs * 1000 >= 2 * self.poll_interval_ms,
            "max_staleness_secs must be 0 (no limit) or at least twice \
             sync.poll_interval_ms, else a healthy replica would refuse to answer",
        )?;
        check(
            self.purge_interval_secs != 0,
            "purge_interval_secs must be at least 1",
        )?;
        Ok(SyncTiming {
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            purge_interval: Duration::from_secs(self.purge_interval_secs),
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            max_staleness: (self.max_staleness_secs != 0)
                .then(|| Duration::from_secs(self.max_staleness_secs)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness_must_outlast_two_polls() {
        let mut s = SyncSettings {
            poll_interval_ms: 1000,
            max_staleness_secs: 1,
            ..SyncSettings::default()
        };
        let err = s.resolve().unwrap_err().to_string();
        assert!(err.contains("sync.max_staleness_secs"), "{err}");
        s.max_staleness_secs = 2;
        assert_eq!(
            s.resolve().unwrap().max_staleness,
            Some(Duration::from_secs(2))
        );
    }
}
