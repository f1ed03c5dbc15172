//! Persistence: one trait per aggregate, implemented for Postgres (production) and SQLite (the
//! embedded default). The store keeps rows and answers queries; it never decides policy. Rows are
//! plain records (`ClientRow`, `KeyRow`) so the store does not depend on the domain: the domain
//! converts them into its parsed types.

mod error;
mod postgres;
mod rows;
mod sql;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

pub use error::StoreError;
pub use postgres::PostgresStore;
pub use rows::{ClientRow, KeyRow, SecretRow};
pub use sqlite::SqliteStore;

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Clients and their secrets.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Inserts a client together with its first secret, atomically.
    /// `AlreadyExists` if the id is taken.
    async fn insert_client(&self, client: &ClientRow, secret: &SecretRow) -> StoreResult<()>;

    /// One client by id.
    async fn get_client(&self, client_id: &str) -> StoreResult<Option<ClientRow>>;

    /// Clients ordered by id, strictly after `after`, optionally of one tenant.
    async fn list_clients(
        &self,
        tenant: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<ClientRow>>;

    /// Replaces a client's mutable fields if its revision is still `expected_revision`
    /// (optimistic concurrency). `Conflict` when another writer got there first, `NotFound`
    /// when the client is gone.
    async fn update_client(&self, client: &ClientRow, expected_revision: i64) -> StoreResult<()>;

    /// Deletes a client and its secrets; false if there was no such client.
    async fn delete_client(&self, client_id: &str) -> StoreResult<bool>;

    /// The hash of the client's live secret with this selector, if any.
    async fn live_secret_hash(
        &self,
        client_id: &str,
        selector: &str,
        now_us: i64,
    ) -> StoreResult<Option<String>>;

    /// Hashes of all the client's secrets that have not expired at `now_us`, newest first.
    async fn live_secret_hashes(&self, client_id: &str, now_us: i64) -> StoreResult<Vec<String>>;

    /// Adds `secret` and makes every other live secret of the client expire at `expire_us`
    /// (never later than it already would), atomically. `NotFound` when the client is gone.
    async fn rotate_secret(&self, secret: &SecretRow, expire_us: i64) -> StoreResult<()>;

    /// Records that the client obtained a token at `at_us`.
    async fn touch_client(&self, client_id: &str, at_us: i64) -> StoreResult<()>;
}

/// Signing keys, private halves encrypted by the domain before they get here.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Inserts `key` unless a key exists already, atomically even across replicas that start
    /// at once. True if it was inserted.
    async fn insert_first_key(&self, key: &KeyRow) -> StoreResult<bool>;

    /// Every stored key, newest first.
    async fn list_keys(&self) -> StoreResult<Vec<KeyRow>>;

    /// Inserts `key` and sets the retire times in `retire` (kid, Unix microseconds), atomically
    /// and serialised across replicas, provided the newest stored key is still `newest_kid`.
    /// False, with nothing changed, when another rotation got there first.
    async fn insert_rotated_key(
        &self,
        key: &KeyRow,
        newest_kid: &str,
        retire: &[(String, i64)],
    ) -> StoreResult<bool>;
}

/// Everything tokend persists.
#[async_trait]
pub trait Store: ClientStore + KeyStore {
    /// Applies pending migrations for this backend.
    async fn migrate(&self) -> StoreResult<()>;

    /// Which backend this is, for logs: `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;
}

/// Options for opening a store.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `postgres://...` or `sqlite://path` / `sqlite::memory:`.
    pub url: String,
    /// Upper bound on pooled connections.
    pub max_connections: u32,
}

/// Opens the store the URL names. Does not migrate.
pub async fn connect(options: &ConnectOptions) -> StoreResult<Arc<dyn Store>> {
    let url = options.url.as_str();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(options).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(options).await?))
    } else {
        Err(StoreError::InvalidUrl(
            "database url must start with postgres://, postgresql:// or sqlite:".into(),
        ))
    }
}
