//! SQLite store: the embedded default, one file, no server to run.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::SqliteSynchronous;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::availability::Availability;
use super::pool_stats::Waiting;
use super::sql::{HasDb, shared_store_impl};
use super::{ChangeFeed, ConnectOptions, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite-backed store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    availability: Arc<Availability>,
    waiting: Arc<Waiting>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file in WAL mode with foreign keys enforced.
    pub async fn connect(options: &ConnectOptions) -> StoreResult<Self> {
        let in_memory = options.url.contains(":memory:");
        let connect = SqliteConnectOptions::from_str(&options.url)?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            .journal_mode(if in_memory {
                SqliteJournalMode::Memory
            } else {
                SqliteJournalMode::Wal
            })
            .synchronous(SqliteSynchronous::Normal);
        // Every connection to `:memory:` is a database of its own: keep exactly one.
        let max = if in_memory {
            1
        } else {
            options.max_connections
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .min_connections(u32::from(in_memory))
            .idle_timeout(if in_memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if in_memory {
                None
            } else {
                Some(Duration::from_secs(1800))
            })
            .acquire_timeout(Duration::from_secs(5))
            // An embedded connection cannot be dropped by a server: no ping before each use.
            .test_before_acquire(false)
            .connect_with(connect)
            .await?;
        Ok(Self {
            pool,
            availability: Arc::default(),
            waiting: Arc::default(),
        })
    }
}

impl HasDb for SqliteStore {
    type Db = sqlx::Sqlite;
}

impl SqliteStore {
    async fn feed(&self) -> StoreResult<Box<dyn ChangeFeed>> {
        Ok(Box::new(SqliteFeed))
    }
}

/// SQLite has no notifications: readers poll. Writes made by this process are applied at once
/// by the process itself; the poll only matters for another process on the same file.
struct SqliteFeed;

#[async_trait]
impl ChangeFeed for SqliteFeed {
    async fn wait(&mut self, timeout: Duration) {
        tokio::time::sleep(timeout).await;
    }
}

shared_store_impl!(
    SqliteStore,
    backend: "sqlite",
    migrator: MIGRATOR,
    key_lock: None,
    change_lock: None,
    notify: None,
    cte_writes: false,
);
