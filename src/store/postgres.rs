//! Postgres store: the production backend.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};

use super::availability::Availability;
use super::pool_stats::Waiting;
use super::sql::{HasDb, shared_store_impl};
use super::{ChangeFeed, ConnectOptions, StoreResult};

/// The LISTEN/NOTIFY channel that announces change-log entries.
pub const CHANGES_CHANNEL: &str = "tokend_changes";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A pooled connection idle for longer than this is checked with a ping before use.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Postgres-backed store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    availability: Arc<Availability>,
    waiting: Arc<Waiting>,
}

impl PostgresStore {
    /// Connects (eagerly, so a wrong URL fails at startup rather than at the first request).
    ///
    /// sqlx pings every connection it hands out by default: one more round trip per statement,
    /// which cost as much Postgres CPU as the durable token writes themselves. Here only a
    /// connection idle for longer than [`PING_IF_IDLE_FOR`] is pinged (one that may have been
    /// dropped by the server or a proxy meanwhile); a busy connection that breaks fails its
    /// statement once, and the pool opens a new one for the next.
    pub async fn connect(options: &ConnectOptions) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > PING_IF_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect(&options.url)
            .await?;
        Ok(Self {
            pool,
            availability: Arc::default(),
            waiting: Arc::default(),
        })
    }
}

impl HasDb for PostgresStore {
    type Db = sqlx::Postgres;
}

impl PostgresStore {
    async fn feed(&self) -> StoreResult<Box<dyn ChangeFeed>> {
        Ok(Box::new(PgFeed {
            pool: self.pool.clone(),
            listener: None,
        }))
    }
}

/// Change-log wake-ups by `LISTEN tokend_changes`. A dropped connection is re-established on
/// the next wait; whatever was announced meanwhile is found by the reader's next poll.
struct PgFeed {
    pool: PgPool,
    listener: Option<PgListener>,
}

#[async_trait]
impl ChangeFeed for PgFeed {
    async fn wait(&mut self, timeout: Duration) {
        if self.listener.is_none() {
            match PgListener::connect_with(&self.pool).await {
                Ok(mut listener) => match listener.listen(CHANGES_CHANNEL).await {
                    Ok(()) => self.listener = Some(listener),
                    Err(err) => tracing::warn!(error = %err, "LISTEN failed; polling"),
                },
                Err(err) => tracing::warn!(error = %err, "no LISTEN connection; polling"),
            }
            if self.listener.is_none() {
                tokio::time::sleep(timeout).await;
                return;
            }
            // Freshly (re)connected: anything announced before is in the log; read it now.
            return;
        }
        let Some(listener) = self.listener.as_mut() else {
            return;
        };
        match tokio::time::timeout(timeout, listener.try_recv()).await {
            Ok(Ok(Some(_))) => while listener.next_buffered().is_some() {},
            Ok(Ok(None)) => tracing::info!("LISTEN connection lost; reconnecting"),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "LISTEN failed; reconnecting");
                self.listener = None;
            }
            Err(_) => {}
        }
    }
}

shared_store_impl!(
    PostgresStore,
    backend: "postgres",
    migrator: MIGRATOR,
    key_lock: Some("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE"),
    // One lock id for all change-log writers: sequence numbers are handed out in commit order.
    change_lock: Some("SELECT pg_advisory_xact_lock(7263546)"),
    notify: Some("SELECT pg_notify('tokend_changes', $1)"),
    cte_writes: true,
);
