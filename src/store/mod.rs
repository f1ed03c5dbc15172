//! Persistence: one trait per aggregate, implemented for Postgres (production) and SQLite (the
//! embedded default). The store keeps rows and answers queries; it never decides policy. Its
//! traits speak the domain's types (a `Client`, a `RefreshFamily`, an `AuditEvent`); the rows
//! are private to the store (`rows`), which converts them both ways, so how a column is
//! encoded never leaves this module. `AuditFilter` and `PurgeCounts` are the store's own
//! query and result values.

mod availability;
mod error;
mod pool_stats;
mod postgres;
mod queries;
mod rows;
mod sql;
mod sqlite;
mod usage_rows;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::audit::UsageCounts;
use crate::domain::changes::{Change, DenyEntry};
use crate::domain::clients::{LiveSecret, StoredSecret};
use crate::domain::keys::{Resealed, SealedSecret, StoredKey};
use crate::domain::policy::TrustedAddress;
use crate::domain::token_endpoint::{OpaqueRecord, RefreshClaim, RefreshFamily, RefreshRecord};
use crate::domain::{AuditEvent, Client};

pub use availability::{Availability, State as DatabaseState};
pub use error::StoreError;
pub use pool_stats::PoolStats;
pub use postgres::PostgresStore;
pub use queries::{AuditFilter, PurgeCounts};
pub use sqlite::SqliteStore;

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Clients and their secrets.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Inserts a client together with its first secret (none for a client that uses no
    /// secret), atomically, and logs the change. `AlreadyExists` if the id is taken.
    async fn insert_client(
        &self,
        client: &Client,
        secret: Option<&StoredSecret>,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;

    /// One client by id.
    async fn get_client(&self, client_id: &str) -> StoreResult<Option<Client>>;

    /// Clients ordered by id, strictly after `after`, optionally of one tenant, at most
    /// `limit`. A stored client that no longer parses is logged and left out (so a page may
    /// hold fewer than `limit` although more follow).
    async fn list_clients(
        &self,
        tenant: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Client>>;

    /// Replaces a client's mutable fields if its revision is still `expected_revision`
    /// (optimistic concurrency), and logs the change. With `revoke_tokens`, also does what
    /// `revoke_client_tokens` does, in the same transaction. `Conflict` when another writer got
    /// there first, `NotFound` when the client is gone.
    async fn update_client(
        &self,
        client: &Client,
        expected_revision: i64,
        revoke_tokens: bool,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;

    /// Deletes a client with its secrets, families and opaque tokens, and logs the change;
    /// false if there was no such client.
    async fn delete_client(
        &self,
        client_id: &str,
        now_us: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;

    /// Makes every token the client holds now inactive: bumps its token generation, revokes
    /// its refresh families, deletes its opaque tokens; logs the change. False if there is no
    /// such client.
    async fn revoke_client_tokens(
        &self,
        client_id: &str,
        now_us: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;

    /// The client's live secret with this selector (its hash and when it expires), if any.
    async fn live_secret(
        &self,
        client_id: &str,
        selector: &str,
        now_us: i64,
    ) -> StoreResult<Option<LiveSecret>>;

    /// Hashes of all the client's secrets that have not expired at `now_us`, newest first.
    async fn live_secret_hashes(&self, client_id: &str, now_us: i64) -> StoreResult<Vec<String>>;

    /// Adds `secret` and makes every other live secret of the client expire at `expire_us`
    /// (never later than it already would), atomically, and logs the change (replicas forget
    /// the secrets they verified). `NotFound` when the client is gone.
    async fn rotate_secret(
        &self,
        secret: &StoredSecret,
        expire_us: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;

    /// Records that the client obtained a token at `at_us`, from `address` if known.
    async fn touch_client(
        &self,
        client_id: &str,
        at_us: i64,
        address: Option<&str>,
    ) -> StoreResult<()>;
}

/// Signing keys and the other secrets sealed under the KEK, encrypted by the domain before they
/// get here. Every write of sealed material is serialised with the others across replicas.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Inserts `key` unless a key exists already, atomically even across replicas that start
    /// at once. True if it was inserted.
    async fn insert_first_key(&self, key: &StoredKey) -> StoreResult<bool>;

    /// Every stored key, newest first.
    async fn list_keys(&self) -> StoreResult<Vec<StoredKey>>;

    /// Inserts `key` and sets the retire times in `retire` (kid, Unix microseconds), atomically
    /// and serialised across replicas, provided the newest stored key is still `newest_kid`.
    /// False, with nothing changed, when another rotation got there first.
    async fn insert_rotated_key(
        &self,
        key: &StoredKey,
        newest_kid: &str,
        retire: &[(String, i64)],
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;

    /// The sealed secret of this name, if stored.
    async fn get_sealed_secret(&self, name: &str) -> StoreResult<Option<SealedSecret>>;

    /// Every sealed secret, by name.
    async fn list_sealed_secrets(&self) -> StoreResult<Vec<SealedSecret>>;

    /// Inserts `secret` unless one of its name exists (of replicas starting at once, the first
    /// wins). True if it was inserted.
    async fn insert_sealed_secret(&self, secret: &SealedSecret) -> StoreResult<bool>;

    /// A KEK rotation, in one transaction serialised with key inserts: gives each signing key
    /// in `keys` and each sealed secret in `secrets` its `new` material under `kek_id`, provided
    /// it still holds the `old` material, and records `audit`. Commits only if nothing is then
    /// left under another KEK; false, with nothing changed, otherwise (a key was added or
    /// re-sealed meanwhile: read again and retry).
    async fn reseal(
        &self,
        keys: &[Resealed],
        secrets: &[Resealed],
        kek_id: &str,
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;
}

/// Refresh families, refresh tokens, opaque access tokens and the deny list.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Starts a refresh family with its first refresh token, atomically.
    async fn insert_grant(&self, grant: &RefreshFamily, first: &RefreshRecord) -> StoreResult<()>;

    /// Exchanges a refresh token in one transaction: spends the token with hash `old_hash`
    /// if, at `now_us`, it is unspent, unexpired and of a live family of `client_id` (one
    /// conditional UPDATE, so of concurrent exchanges exactly one wins), stores `successor`
    /// in the same family and extends the family's expiry times. Otherwise changes nothing
    /// and returns what is stored about the token.
    async fn rotate_refresh(
        &self,
        old_hash: &str,
        client_id: &str,
        successor: &RefreshRecord,
        access_expire_us: i64,
        now_us: i64,
    ) -> StoreResult<RefreshClaim>;

    /// A refresh token and its family, by token hash.
    async fn find_refresh(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<(RefreshRecord, RefreshFamily)>>;

    /// Revokes a refresh family: no refresh token of it exchanges any more, and a deny-list
    /// entry (kept until `leeway_us` after the family's last access token expires) makes its
    /// access tokens inactive. Logs the change. False if it was revoked already or is unknown.
    async fn revoke_grant(
        &self,
        grant_id: &str,
        leeway_us: i64,
        now_us: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;

    /// Stores an opaque access token.
    async fn insert_opaque(&self, token: &OpaqueRecord) -> StoreResult<()>;

    /// An opaque access token by hash (expired ones included until purged).
    async fn find_opaque(&self, token_hash: &str) -> StoreResult<Option<OpaqueRecord>>;

    /// Revokes one access token: a deny-list entry for `jti` kept until `expire_us`, the opaque
    /// token row deleted if `opaque_hash` is given; logs the change. False if it was revoked
    /// already.
    async fn revoke_access_token(
        &self,
        jti: &str,
        client_id: &str,
        expire_us: i64,
        opaque_hash: Option<&str>,
        now_us: i64,
    ) -> StoreResult<bool>;

    /// Deletes what can no longer matter at `now_us`: deny entries, opaque and refresh tokens
    /// and families and the `jti`s of client assertions that have expired, and change-log
    /// rows older than `changes_before_us`.
    async fn purge(&self, now_us: i64, changes_before_us: i64) -> StoreResult<PurgeCounts>;
}

/// The change log replicas tail to keep their in-memory view current.
#[async_trait]
pub trait ChangeStore: Send + Sync {
    /// The newest change's sequence number (0 when the log is empty).
    async fn last_change_seq(&self) -> StoreResult<i64>;

    /// Changes after `seq`, oldest first, at most `limit`.
    async fn changes_since(&self, seq: i64, limit: u32) -> StoreResult<Vec<Change>>;

    /// Deny-list entries still in force at `now_us`, in (kind, subject) order, strictly
    /// after `after`, at most `limit`: read in pages, so a replica loading a million of them
    /// never holds them all twice.
    async fn live_revocations(
        &self,
        now_us: i64,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> StoreResult<Vec<DenyEntry>>;

    /// Something that wakes up when another writer may have logged a change.
    async fn change_feed(&self) -> StoreResult<Box<dyn ChangeFeed>>;
}

/// Wake-ups for the change log. Only a hint: readers always read the log itself, so a lost
/// notification costs latency (up to the polling interval), never correctness.
#[async_trait]
pub trait ChangeFeed: Send {
    /// Returns when a change may have been logged, or after `timeout`.
    async fn wait(&mut self, timeout: Duration);
}

/// What replicas share to enforce limits together: their heartbeats (so each knows how many
/// share a limit) and the lockouts one of them began.
#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// Records that `replica_id` is alive at `now_us` and returns how many replicas
    /// (itself included) heartbeated after `live_after_us`.
    async fn heartbeat(
        &self,
        replica_id: &str,
        now_us: i64,
        live_after_us: i64,
    ) -> StoreResult<u32>;

    /// Removes a replica that stops.
    async fn leave(&self, replica_id: &str) -> StoreResult<()>;

    /// Counts one failed authentication of `subject` (`client:<id>` or `address:<net>`) at
    /// `now_us` for the whole deployment, in windows of `window_us`; returns the failures in
    /// the current window, this one included, and the locks the subject had (its strikes).
    async fn count_failure(
        &self,
        subject: &str,
        now_us: i64,
        window_us: i64,
    ) -> StoreResult<(i64, i64)>;

    /// Locks `subject` until `until_us`: a strike more, counting restarts when the lock ends,
    /// and every replica hears of it through the change log; atomically.
    async fn record_lockout(&self, subject: &str, until_us: i64, now_us: i64) -> StoreResult<()>;

    /// Deletes failure counters whose window and lock both ended before `before_us`, and
    /// trust that ended before it.
    async fn purge_failures(&self, before_us: i64) -> StoreResult<u64>;

    /// Locks announced and still in force at `now_us`, oldest first.
    async fn live_lockouts(&self, now_us: i64) -> StoreResult<Vec<Change>>;

    /// Trusts a client at an address until `pair.until_us` (or later, if it already was) and
    /// announces it to every replica through the change log; atomically. `NotFound` when the
    /// client is gone.
    async fn trust_address(&self, pair: &TrustedAddress, now_us: i64) -> StoreResult<()>;

    /// Every client-address pair still trusted at `now_us`.
    async fn live_trust(&self, now_us: i64) -> StoreResult<Vec<TrustedAddress>>;
}

/// The audit trail and usage counters. The writes that change clients, keys and refresh
/// families take their audit events as an argument and record them in their own transaction:
/// no change without its event, no event without its change.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Records events outside any other write (aggregated refusals, flushed in batches); an
    /// event whose id exists already adds its count to the stored one.
    async fn record_audit(&self, events: &[AuditEvent]) -> StoreResult<()>;

    /// Events matching `filter`, newest first (time, then id), at most `limit`.
    async fn list_audit_events(
        &self,
        filter: &AuditFilter,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>>;

    /// Adds usage increments to the stored counters, atomically.
    async fn add_usage(&self, rows: &[UsageCounts]) -> StoreResult<()>;

    /// A client's usage from `from_day` (days since the epoch) on, newest first.
    async fn client_usage(&self, client_id: &str, from_day: i64) -> StoreResult<Vec<UsageCounts>>;

    /// When and from where the client last obtained a token; `None` for an unknown client.
    async fn last_use(&self, client_id: &str)
    -> StoreResult<Option<(Option<i64>, Option<String>)>>;

    /// Deletes events older than `before_us` and usage of days before `before_day`; returns
    /// how many rows went.
    async fn purge_audit(&self, before_us: i64, before_day: i64) -> StoreResult<u64>;
}

/// What makes a client assertion single-use across every replica.
#[async_trait]
pub trait AssertionStore: Send + Sync {
    /// Records that `client_id` used an assertion with this `jti`, remembered until
    /// `expire_us` (then purged). `AlreadyExists` when it was used before: a replay. `NotFound`
    /// when the client is gone.
    async fn spend_assertion(&self, client_id: &str, jti: &str, expire_us: i64) -> StoreResult<()>;
}

/// Everything tokend persists.
#[async_trait]
pub trait Store:
    ClientStore + KeyStore + TokenStore + ChangeStore + PolicyStore + AuditStore + AssertionStore
{
    /// Applies pending migrations for this backend.
    async fn migrate(&self) -> StoreResult<()>;

    /// Which backend this is, for logs: `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;

    /// The breaker every other call consults first: while it is open they fail at once.
    fn availability(&self) -> &Availability;

    /// The connection pool as it is now, for metrics.
    fn pool_stats(&self) -> PoolStats;

    /// Whether the database answers: one round trip on a connection of its own (so a pool
    /// whose connections are all busy does not count as a database that is down), past the
    /// breaker, given at most `timeout` (connecting included).
    async fn ping(&self, timeout: Duration) -> StoreResult<()>;
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
