//! Postgres store: the production backend.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::sql::{HasDb, shared_store_impl};
use super::{ConnectOptions, Store, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Postgres-backed store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects (eagerly, so a wrong URL fails at startup rather than at the first request).
    pub async fn connect(options: &ConnectOptions) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&options.url)
            .await?;
        Ok(Self { pool })
    }
}

impl HasDb for PostgresStore {
    type Db = sqlx::Postgres;
}

shared_store_impl!(
    PostgresStore,
    Some("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
);

#[async_trait]
impl Store for PostgresStore {
    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}
