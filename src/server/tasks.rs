//! The background tasks that run beside the API port: key maintenance, health following the
//! database, heartbeats, and writing last-use times. Each loops until aborted (or, for keys,
//! until shutdown begins); the server holds them in [`AbortOnDrop`] guards.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tonic_health::server::HealthReporter;

use crate::domain::Tokend;
use crate::grpc;
use crate::store::DatabaseState;

/// Aborts a background task when the server stops, however it stops.
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Every `period` until shutdown begins: rotates the signing key if it is due and rereads the
/// stored keys, so rotations made by other replicas are served here too.
pub(super) async fn maintain_keys(
    tokend: Arc<Tokend>,
    period: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate, and the keys were just loaded
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopping.wait_for(|stopping| *stopping) => return,
        }
        if let Err(err) = tokend.keys.maintain().await {
            tracing::warn!(error = ?err, "signing-key maintenance failed; retrying next period");
        }
    }
}

/// How often health rechecks whether the replica's view is still fresh enough to answer from.
const FRESHNESS_CHECK: Duration = Duration::from_millis(500);

/// Keeps health in step with the database until aborted: the write services go NOT_SERVING as
/// soon as the sync loop finds the database unreachable and come back when it answers again;
/// Introspection stays SERVING as long as it may answer from memory.
pub(super) async fn follow_database(
    tokend: Arc<Tokend>,
    reporter: HealthReporter,
    ext_authz: bool,
) {
    let mut database = tokend.database_changes();
    let mut ticks = tokio::time::interval(FRESHNESS_CHECK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shown = (true, true);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            changed = database.changed() => if changed.is_err() { return },
        }
        let up = *database.borrow_and_update() == DatabaseState::Up;
        let now = (up, tokend.registry.is_fresh());
        if now == shown {
            continue;
        }
        tracing::info!(
            database_up = now.0,
            introspection_serving = now.1,
            "health follows the database"
        );
        grpc::set_availability_health(&reporter, now.0, now.1, ext_authz).await;
        shown = now;
    }
}

/// How often this replica records that it is alive, and how long a record counts as live.
#[derive(Debug, Clone, Copy)]
pub(super) struct Heartbeat {
    pub(super) period: Duration,
    pub(super) live_for: Duration,
}

/// Records this replica as live and re-divides the limits, every period.
pub(super) async fn heartbeats(tokend: Arc<Tokend>, heartbeat: Heartbeat) {
    let mut ticks = tokio::time::interval(heartbeat.period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first beat happened before serving
    loop {
        ticks.tick().await;
        beat(&tokend, heartbeat.live_for).await;
    }
}

/// One heartbeat, on the wall clock (the domain's clock may be a test's manual one; liveness
/// is about real time).
pub(super) async fn beat(tokend: &Tokend, live_for: Duration) {
    let now_us = crate::domain::clock::to_micros(time::OffsetDateTime::now_utc());
    if let Err(err) = tokend.heartbeat(now_us, live_for).await {
        tracing::warn!(error = %err, "heartbeat failed; keeping the last replica count");
    }
}

/// Writes batched last-use times every `period` until the server stops.
pub(super) async fn flush_usage(tokend: Arc<Tokend>, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        tokend.flush_usage().await;
    }
}
