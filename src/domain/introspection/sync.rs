//! The loop that keeps a replica's view current: it tails the change log (woken by the
//! store's change feed, polling on an interval besides), notices when the database goes away
//! and catches up when it returns, and purges what can no longer matter.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::registry::{CHANGE_RETENTION, Registry};
use crate::domain::clock::to_micros;
use crate::domain::error::Error;
use crate::store::DatabaseState;

/// Settings of the loop that keeps a replica's view current.
#[derive(Debug, Clone, Copy)]
pub struct SyncConfig {
    /// Longest wait between two reads of the change log when no notification arrives.
    pub poll_interval: Duration,
    /// How often expired deny entries, tokens and old change-log rows are purged.
    pub purge_interval: Duration,
    /// Audit events and usage older than this are purged too.
    pub audit_retention: Duration,
}

/// Longest a read of the change log may take before the database counts as unreachable (a
/// network that drops packets instead of refusing connections hangs rather than fails).
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// While the database is unreachable: how often it is pinged, and how long a ping may take.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Tails the change log until the task is dropped or aborted, and purges periodically.
///
/// It is also what notices that the database went away: a failed read opens the store's
/// breaker (writes then fail at once, the write services report NOT_SERVING) and the loop
/// pings every [`PROBE_INTERVAL`] until the database answers, then closes the breaker and
/// catches up on everything logged meanwhile.
pub async fn run_sync(registry: Arc<Registry>, config: SyncConfig) {
    let mut feed = loop {
        match registry.store.change_feed().await {
            Ok(feed) => break feed,
            Err(err) => {
                tracing::warn!(error = %err, "no change feed yet; retrying");
                tokio::time::sleep(config.poll_interval).await;
            }
        }
    };
    let availability = registry.store.availability();
    let mut next_purge = Instant::now() + config.purge_interval;
    loop {
        if availability.state() != DatabaseState::Down {
            feed.wait(config.poll_interval).await;
        } else {
            tokio::time::sleep(PROBE_INTERVAL.min(config.poll_interval)).await;
            if let Err(err) = registry.store.ping(PROBE_TIMEOUT).await {
                tracing::debug!(error = %err, "the database is still unreachable");
                continue;
            }
            availability.set_recovering();
            tracing::info!(
                stale_ms = registry.staleness().as_millis(),
                "the database answers again; catching up on the change log"
            );
        }
        match tokio::time::timeout(READ_TIMEOUT, registry.catch_up()).await {
            Ok(Ok(_)) => availability.set_up(),
            // A busy SQLite file or a pool with no free connection also reads as unavailable:
            // the database counts as down only if it does not answer a ping of its own.
            Ok(Err(Error::Unavailable(_))) | Err(_) => {
                match registry.store.ping(PROBE_TIMEOUT).await {
                    Ok(()) => tracing::warn!(
                        "reading the change log failed or timed out, but the database answers (busy?); retrying"
                    ),
                    Err(err) => {
                        if availability.state() != DatabaseState::Down {
                            tracing::error!(error = %err, "the database is unreachable; writes fail fast until it returns, Introspect answers from memory");
                        }
                        availability.set_down(&err.to_string());
                    }
                }
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "reading the change log failed; retrying");
            }
        }
        if Instant::now() >= next_purge && availability.state() == DatabaseState::Up {
            next_purge = Instant::now() + config.purge_interval;
            purge(&registry, config.audit_retention).await;
        }
    }
}

async fn purge(registry: &Registry, audit_retention: Duration) {
    let now = registry.clock.now();
    let before = now - CHANGE_RETENTION;
    match registry
        .store
        .purge(to_micros(now), to_micros(before))
        .await
    {
        Ok(counts) => tracing::debug!(?counts, "purged expired rows"),
        Err(err) => tracing::warn!(error = %err, "purge failed; will retry"),
    }
    // Failure counters whose window and lock ended over a day ago (their strikes are forgiven).
    let failures_before = to_micros(now) - 24 * 3600 * 1_000_000 - registry.lockout.window_us();
    if let Err(err) = registry.store.purge_failures(failures_before).await {
        tracing::warn!(error = %err, "failure-counter purge failed; will retry");
    }
    let audit_before = to_micros(now - audit_retention);
    let day_us = 24 * 3600 * 1_000_000;
    match registry
        .store
        .purge_audit(audit_before, audit_before.div_euclid(day_us))
        .await
    {
        Ok(n) => tracing::debug!(rows = n, "purged old audit events and usage"),
        Err(err) => tracing::warn!(error = %err, "audit purge failed; will retry"),
    }
    registry.forget_expired();
}
