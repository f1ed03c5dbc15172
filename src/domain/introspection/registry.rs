//! The in-memory view every replica answers `Introspect` from: the registered clients (active,
//! tenant, scopes, token generation) and the deny list (revoked access tokens by `jti`, revoked
//! refresh families by grant id). No database call on the hot path.
//!
//! The database stays the truth. Every write that changes what `Introspect` answers appends to
//! the change log in its own transaction; each replica tails the log. The replica that made a
//! write applies it before answering (read-your-writes); the others are woken by Postgres
//! `LISTEN/NOTIFY` and also poll the log on an interval, so a dropped notification connection
//! costs latency, never a missed revocation. A replica that could not read the log for longer
//! than half its retention reloads everything.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use super::token_cache::TokenCache;
use crate::domain::changes::{Change, ChangeKind};
use crate::domain::clients::Client;
use crate::domain::clients::secret_cache::SecretCache;
use crate::domain::clock::{Clock, to_micros};
use crate::domain::error::{Error, Result};
use crate::domain::keys::KeyRing;
use crate::domain::policy::{Lockout, LockoutConfig, Subject, TrustedAddress};
use crate::store::{Store, StoreError};

/// How long change-log rows are kept. A replica further behind than half of it reloads fully.
pub const CHANGE_RETENTION: Duration = Duration::from_secs(3600);
const PAGE: u32 = 1000;
const REVOCATION_PAGE: u32 = 10_000;

/// Counts of what a replica holds, for memory figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrySizes {
    pub clients: usize,
    /// Deny-list entries (access tokens and refresh families).
    pub revocations: usize,
    pub cached_tokens: usize,
    pub cached_secrets: usize,
}

#[derive(Default)]
struct View {
    clients: HashMap<String, Arc<Client>>,
    /// jti -> when the entry may go (Unix µs).
    denied_tokens: HashMap<String, i64>,
    /// grant id -> when the entry may go (Unix µs).
    denied_grants: HashMap<String, i64>,
    /// Client ids that signed tokens named but the change log did not know even after a fresh
    /// read (deleted clients), until those tokens expire: they do not cost a read again.
    unknown: HashMap<String, i64>,
}

struct SyncState {
    last_seq: i64,
    last_ok: Instant,
}

/// Sizes of the replica's caches.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// Verified tokens kept for `Introspect` (0: none).
    pub token_entries: usize,
    /// Verified client secrets kept for `IssueToken` (0: none).
    pub secret_entries: usize,
    /// Longest a verified secret is remembered (zero: not at all).
    pub secret_ttl: Duration,
}

/// The replica's view of clients and revocations, and what it remembers of tokens and secrets
/// it verified (valid only together with that view).
pub struct Registry {
    view: RwLock<View>,
    /// Verified tokens, for `Introspect`.
    pub(in crate::domain) tokens: TokenCache,
    /// Verified secrets, for `IssueToken`; an entry counts only while its client is unchanged.
    pub(in crate::domain) secrets: SecretCache,
    /// Failed-authentication counters and the locks in force, wherever they began.
    pub(in crate::domain) lockout: Lockout,
    sync: tokio::sync::Mutex<SyncState>,
    pub(super) store: Arc<dyn Store>,
    keys: Arc<KeyRing>,
    pub(super) clock: Arc<dyn Clock>,
    /// When the registry was made; `read_at_ms` counts from here.
    started: Instant,
    /// When the change log was last read in full (ms after `started`); lock-free, as every
    /// `Introspect` checks it.
    read_at_ms: AtomicU64,
    /// How stale the view may get before `Introspect` refuses to answer from it.
    max_staleness: Option<Duration>,
}

impl Registry {
    /// Loads every client and every live deny entry.
    pub async fn load(
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
        clock: Arc<dyn Clock>,
        caches: CacheConfig,
        lockout: LockoutConfig,
        max_staleness: Option<Duration>,
    ) -> Result<Self> {
        let registry = Self {
            view: RwLock::new(View::default()),
            tokens: TokenCache::new(caches.token_entries),
            secrets: SecretCache::new(caches.secret_entries, caches.secret_ttl)?,
            lockout: Lockout::new(lockout),
            sync: tokio::sync::Mutex::new(SyncState {
                last_seq: 0,
                last_ok: Instant::now(),
            }),
            store,
            keys,
            clock,
            started: Instant::now(),
            read_at_ms: AtomicU64::new(0),
            max_staleness,
        };
        {
            let mut sync = registry.sync.lock().await;
            registry.reload(&mut sync).await?;
        }
        Ok(registry)
    }

    /// The client with this id, as of the last change applied.
    pub fn client(&self, client_id: &str) -> Option<Arc<Client>> {
        self.read().clients.get(client_id).cloned()
    }

    /// The client a genuine token (verified signature or stored opaque token) names. A client
    /// this replica has not heard of yet was created moments ago through another replica or
    /// process: one read of the change log finds it. A client still unknown after that is
    /// gone; it is remembered as such until `token_exp_us`, so its tokens cost no more reads.
    pub async fn client_for_token(
        &self,
        client_id: &str,
        token_exp_us: i64,
    ) -> Option<Arc<Client>> {
        {
            let view = self.read();
            if let Some(client) = view.clients.get(client_id) {
                return Some(client.clone());
            }
            if view.unknown.contains_key(client_id) {
                return None;
            }
        }
        if let Err(err) = self.catch_up().await {
            tracing::warn!(error = %err, "could not read the change log for an unknown client");
            return None;
        }
        let mut view = self.write();
        if let Some(client) = view.clients.get(client_id) {
            return Some(client.clone());
        }
        view.unknown.insert(client_id.to_owned(), token_exp_us);
        None
    }

    /// Whether the access token `jti`, or the refresh family `grant_id` it came from, is on
    /// the deny list.
    pub fn is_revoked(&self, jti: &str, grant_id: Option<&str>) -> bool {
        let view = self.read();
        view.denied_tokens.contains_key(jti)
            || grant_id.is_some_and(|g| view.denied_grants.contains_key(g))
    }

    /// How much the replica holds in memory.
    pub fn sizes(&self) -> RegistrySizes {
        let view = self.read();
        RegistrySizes {
            clients: view.clients.len(),
            revocations: view.denied_tokens.len() + view.denied_grants.len(),
            cached_tokens: self.tokens.len(),
            cached_secrets: self.secrets.len(),
        }
    }

    /// Applies every change logged since the last call. Called after each local write (so the
    /// writer reads its own writes) and by the sync loop.
    pub async fn catch_up(&self) -> Result<usize> {
        let mut sync = self.sync.lock().await;
        if sync.last_ok.elapsed() > CHANGE_RETENTION / 2 {
            tracing::warn!("change log not read for too long; reloading everything");
            self.reload(&mut sync).await?;
            return Ok(0);
        }
        let mut applied = 0;
        loop {
            let changes = self.store.changes_since(sync.last_seq, PAGE).await?;
            let n = changes.len();
            for change in changes {
                self.apply(&change).await?;
                sync.last_seq = change.seq;
                applied += 1;
            }
            if n < PAGE as usize {
                break;
            }
        }
        sync.last_ok = Instant::now();
        self.mark_read();
        Ok(applied)
    }

    /// How long ago the change log was last read in full: how far behind the database this
    /// replica's deny list may be.
    pub fn staleness(&self) -> Duration {
        let read_at = Duration::from_millis(self.read_at_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(read_at)
    }

    /// Whether the view is recent enough to answer from (`sync.max_staleness_secs`).
    pub fn is_fresh(&self) -> bool {
        self.max_staleness.is_none_or(|max| self.staleness() <= max)
    }

    /// `Unavailable` once the change log has not been read for longer than allowed: a replica
    /// cut off from the database keeps answering from memory until then, never longer, since
    /// revocations made meanwhile through other replicas are unknown to it.
    pub fn ensure_fresh(&self) -> Result<()> {
        if self.is_fresh() {
            return Ok(());
        }
        Err(Error::Unavailable(format!(
            "this replica has not been able to read the change log for {} s, longer than the \
             {} s allowed (sync.max_staleness_secs): it may not know of recent revocations, so \
             it does not answer; the database is probably unreachable",
            self.staleness().as_secs(),
            self.max_staleness.unwrap_or_default().as_secs()
        )))
    }

    fn mark_read(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.read_at_ms.store(ms, Ordering::Relaxed);
    }

    /// Same as `catch_up` after a write that already succeeded: a failure here only delays
    /// this replica's view until the sync loop's next poll, so it is logged, not returned.
    pub async fn catch_up_after_write(&self) {
        if let Err(err) = self.catch_up().await {
            tracing::warn!(error = %err, "could not apply the change log after a write; the sync loop will");
        }
    }

    /// Drops deny entries whose tokens have all expired, cached tokens that expired and
    /// cached secrets that no longer count.
    pub fn forget_expired(&self) {
        let now = self.clock.now();
        let now_us = to_micros(now);
        {
            let mut view = self.write();
            view.denied_tokens.retain(|_, exp| *exp > now_us);
            view.denied_grants.retain(|_, exp| *exp > now_us);
            view.unknown.retain(|_, exp| *exp > now_us);
        }
        self.tokens.forget_expired(now.unix_timestamp());
        self.secrets.forget_stale(now_us, |id| self.client(id));
        self.lockout.forget_expired(now_us);
    }

    async fn reload(&self, sync: &mut SyncState) -> Result<()> {
        // The sequence number first: whatever changes while loading is applied again after,
        // and applying a change twice is harmless.
        let seq = self.store.last_change_seq().await?;
        let mut clients = HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let rows = self
                .store
                .list_clients(None, after.as_deref(), PAGE)
                .await?;
            // Until an empty page: the store leaves corrupt rows out, so a short page is not
            // necessarily the last.
            let Some(last) = rows.last() else { break };
            after = Some(last.id.to_string());
            for client in rows {
                clients.insert(client.id.to_string(), Arc::new(client));
            }
        }
        let now = to_micros(self.clock.now());
        let mut denied_tokens = HashMap::new();
        let mut denied_grants = HashMap::new();
        let mut after: Option<(String, String)> = None;
        loop {
            let key = after.as_ref().map(|(k, s)| (k.as_str(), s.as_str()));
            let rows = self
                .store
                .live_revocations(now, key, REVOCATION_PAGE)
                .await?;
            let n = rows.len();
            after = rows
                .last()
                .map(|r| (r.kind.as_str().to_owned(), r.subject.clone()));
            for row in rows {
                match row.kind {
                    ChangeKind::Token => denied_tokens.insert(row.subject, row.expire_time_us),
                    ChangeKind::Grant => denied_grants.insert(row.subject, row.expire_time_us),
                    _ => None,
                };
            }
            if n < REVOCATION_PAGE as usize {
                break;
            }
        }
        denied_tokens.shrink_to_fit();
        denied_grants.shrink_to_fit();
        for pair in self.store.live_trust(now).await? {
            self.lockout.trust(&pair, now);
        }
        for lock in self.store.live_lockouts(now).await? {
            self.apply_lock(&lock);
        }
        *self.write() = View {
            clients,
            denied_tokens,
            denied_grants,
            unknown: HashMap::new(),
        };
        sync.last_seq = seq;
        sync.last_ok = Instant::now();
        self.mark_read();
        Ok(())
    }

    async fn apply(&self, change: &Change) -> Result<()> {
        match &change.kind {
            ChangeKind::Client => {
                let client = match self.store.get_client(&change.subject).await {
                    Ok(client) => client,
                    Err(StoreError::Unexpected(err)) => {
                        tracing::error!(error = %err, "a changed client is corrupt; treating it as gone");
                        None
                    }
                    Err(err) => return Err(err.into()),
                };
                let mut view = self.write();
                view.unknown.remove(&change.subject);
                match client {
                    Some(c) => view.clients.insert(change.subject.clone(), Arc::new(c)),
                    None => view.clients.remove(&change.subject),
                };
            }
            ChangeKind::Token => {
                self.write()
                    .denied_tokens
                    .insert(change.subject.clone(), change.expire_time_us);
            }
            ChangeKind::Grant => {
                self.write()
                    .denied_grants
                    .insert(change.subject.clone(), change.expire_time_us);
            }
            ChangeKind::Keys => self.keys_changed().await?,
            ChangeKind::Lockout => self.apply_lock(change),
            ChangeKind::Trust => self.apply_trust(change),
            ChangeKind::Unknown(other) => {
                tracing::warn!(kind = other, "unknown change kind; ignored")
            }
        }
        Ok(())
    }

    fn apply_trust(&self, change: &Change) {
        match TrustedAddress::decode(&change.subject, change.expire_time_us) {
            Some(pair) => self.lockout.trust(&pair, to_micros(self.clock.now())),
            None => {
                tracing::warn!(subject = %change.subject, "unreadable trusted address; ignored")
            }
        }
    }

    fn apply_lock(&self, change: &Change) {
        match Subject::decode(&change.subject) {
            Some(subject) => self.lockout.lock(subject, change.expire_time_us),
            None => tracing::warn!(subject = %change.subject, "unreadable lockout; ignored"),
        }
    }

    async fn keys_changed(&self) -> Result<()> {
        self.keys.reload(self.store.as_ref()).await
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, View> {
        self.view.write().unwrap_or_else(|e| e.into_inner())
    }
}
