//! The domain: every rule of tokend, one folder per sub-domain; front ends (gRPC, HTTP, the
//! CLI) call into `Tokend`, the domain calls the store through its traits and never sees
//! transport or SQL types.
//!
//! - `clients`        — registered clients: the entity and its input rules, the admin service,
//!   secrets (argon2id) and the replica's cache of verified ones, the auth methods a client
//!   lists and the public keys (`jwks`) it signs assertions with instead.
//! - `token_endpoint` — the gate every client passes, the typed grants (client credentials,
//!   refresh, exchange), revocation, minting, the claims and opaque tokens.
//! - `introspection`  — verifying tokens (RFC 7662, the bearer tokens of tokend's own
//!   callers, Envoy's verdict), the callers' rules, and the replica's in-memory view (clients,
//!   deny list, lockouts, caches) with the sync loop that keeps it current.
//! - `keys`           — signing keys, their rotation and the KEKs that seal them.
//! - `policy`         — allow-lists, rate limits, the lockout.
//! - `audit`          — the audit trail and per-client usage.
//! - `federation`     — the workload-identity issuers the operator trusts; `key_sets`, the
//!   public keys tokend fetches (clients' `jwks_uri`, those issuers' keys).
//! - shared values: `error`, `ids`, `scope`, `clock`, `stats`, `page_token`.
//!
//! This file keeps only the wiring (`Tokend`).

pub mod audit;
pub mod changes;
pub mod clients;
pub mod clock;
mod error;
pub mod federation;
mod ids;
pub mod introspection;
pub mod key_sets;
pub mod keys;
mod page_token;
pub mod policy;
pub mod scope;
mod stats;
pub mod token_endpoint;

use std::sync::Arc;
use std::time::Duration;

pub use audit::{AuditAdmin, AuditEvent, AuditKind, UsageRecorder};
pub use clients::{
    CertificateSource, Client, ClientAdmin, ClientCa, ClientCertificate, ClientField, ClientInput,
    ClientPage, ClientSecret, ClientSpec, HashParams, MAX_ACCESS_TTL, SecretHasher, TokenFormat,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use ids::{ClientId, TenantId};
pub use introspection::{
    ActiveToken, CHANGE_RETENTION, CacheConfig, Caller, EdgeRequest, EdgeRoute, EdgeRoutes,
    EdgeVerdict, Insufficient, Introspector, JwtVerifier, MAX_TOKEN_LEN, Registry, RegistrySizes,
    SyncConfig, TokenCache, VerifiedToken, run_sync, token_key,
};
pub use keys::JWKS_MAX_AGE;
pub use keys::{Kek, KekNotConfigured, KekRotation, KekSet, KeyRing, MacKey, PublicJwk};
pub use keys::{KeyAdmin, KeyInfo, KeyPolicy, KeyState, KeyTimes, MAX_PREPUBLISH, RotateOptions};
pub use keys::{SigningAlgorithm, rotate_kek};
pub use policy::{LockoutConfig, Policy, PolicyConfig};
pub use scope::{Scope, ScopeSet};
pub use stats::{LATENCY_BUCKETS, Stats};
pub use token_endpoint::{
    ACCESS_TOKEN_TYPE, AccessClaims, Actor, AssertionRules, ClientAuth, DEFAULT_ASSERTION_LIFETIME,
    Exchange, Grant, GrantRequest, GrantType, IssuedToken, JWT_BEARER_ASSERTION, JWT_TOKEN_TYPE,
    MAX_ASSERTION_LEN, MAX_CHAIN, OpaqueKind, OpaqueToken, Origin, Presented, Proof, RevokeRequest,
    TOKEN_ENDPOINT_PATH, TOKEN_EXCHANGE_GRANT, TokenEndpoint, TokenTypeHint,
};

use crate::store::Store;

/// Domain settings, taken from the config.
#[derive(Debug, Clone)]
pub struct DomainConfig {
    /// `iss` of every token, and the audience tokend's own callers' tokens must carry.
    pub issuer: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// The audiences and longest lifetime of client assertions (`private_key_jwt`).
    pub assertions: AssertionRules,
    pub hash_params: HashParams,
    /// How many argon2 computations may run at once.
    pub hash_concurrency: usize,
    pub algorithm: SigningAlgorithm,
    /// Whether `Introspect` needs a caller token with scope `tokend.introspect`.
    pub introspection_requires_auth: bool,
    /// How long a spent refresh token may be presented again for the same successor.
    pub refresh_retry_window: Duration,
    /// Pre-publication and automatic rotation of signing keys.
    pub key_policy: KeyPolicy,
    /// What each replica remembers of verified tokens and secrets.
    pub caches: CacheConfig,
    /// Trusted proxies and the per-address rate limit.
    pub policy: PolicyConfig,
    /// When failed authentications lock a client_id or an address.
    pub lockout: LockoutConfig,
    /// How long audit events and usage are kept.
    pub audit_retention: Duration,
    /// How long after its last read of the change log a replica still answers from memory
    /// (`None`: however long).
    pub max_staleness: Option<Duration>,
    /// The workload-identity issuers the operator trusts.
    pub federation: Vec<federation::TrustedIssuer>,
    /// Where fetched key sets come from (clients' `jwks_uri`, the issuers' keys); the default
    /// fetches nothing, and the server sets the real ones.
    pub key_sources: federation::KeySources,
    /// The CA a `tls_client_auth` certificate forwarded by a trusted proxy must chain to
    /// (`server.tls.client_ca_file`, set by the server that loads it); `None`: the proxy's
    /// own verification is trusted.
    pub client_ca: Option<Arc<dyn ClientCa>>,
}

/// The assembled domain services.
pub struct Tokend {
    pub clients: ClientAdmin,
    pub tokens: TokenEndpoint,
    pub introspection: Arc<Introspector>,
    /// The replica's in-memory view; `run_sync` keeps it current.
    pub registry: Arc<Registry>,
    pub keys: KeyAdmin,
    /// The audit trail and usage, for `AuditService`.
    pub audit: AuditAdmin,
    /// Allow-lists, rate limits, the replica count they are shared by.
    pub policy: Arc<Policy>,
    /// What the domain counts, for Prometheus.
    pub stats: Arc<Stats>,
    /// This replica's id in the heartbeat table.
    replica_id: String,
    /// Last uses not yet written; `server` flushes it periodically and on shutdown.
    usage: Arc<UsageRecorder>,
    store: Arc<dyn Store>,
}

impl Tokend {
    /// Loads (or on first start creates) the MAC key and the signing keys, opening each with
    /// the KEK its row names (an error names a KEK `keks` lacks), loads the registry and wires
    /// the services.
    pub async fn open(
        store: Arc<dyn Store>,
        keks: KekSet,
        config: DomainConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let keks = Arc::new(keks);
        // The MAC key first: on a database from before KEK rotation it is derived from the KEK
        // of the stored keys, which must be read before a first key could be added.
        let mac = Arc::new(MacKey::load_or_create(store.as_ref(), &keks, &clock).await?);
        let keys = Arc::new(
            KeyRing::load_or_create(store.as_ref(), keks, config.algorithm, clock.clone()).await?,
        );
        let registry = Arc::new(
            Registry::load(
                store.clone(),
                keys.clone(),
                clock.clone(),
                config.caches,
                config.lockout,
                config.max_staleness,
            )
            .await?,
        );
        let policy = Arc::new(Policy::new(config.policy));
        let federation = Arc::new(federation::Federation::new(
            config.federation,
            &config.key_sources,
            &config.assertions.audiences,
        ));
        let client_keys = Arc::new(key_sets::KeySets::new(config.key_sources.clients.clone()));
        let usage = Arc::new(UsageRecorder::default());
        let stats = Arc::new(Stats::new());
        let hasher =
            SecretHasher::new(config.hash_params, config.hash_concurrency)?.with_stats(&stats);
        let jwt = Arc::new(JwtVerifier {
            keys: keys.clone(),
            issuer: config.issuer.clone(),
        });
        let introspection = Arc::new(Introspector {
            store: store.clone(),
            keys: keys.clone(),
            jwt: jwt.clone(),
            registry: registry.clone(),
            clock: clock.clone(),
            issuer: config.issuer.clone(),
            leeway: config.leeway,
            require_caller: config.introspection_requires_auth,
            usage: usage.clone(),
            stats: stats.clone(),
            policy: policy.clone(),
        });
        Ok(Self {
            clients: ClientAdmin {
                store: store.clone(),
                hasher: hasher.clone(),
                clock: clock.clone(),
                registry: registry.clone(),
                federation: federation.clone(),
            },
            tokens: TokenEndpoint {
                store: store.clone(),
                hasher,
                keys: keys.clone(),
                mac,
                jwt,
                introspection: introspection.clone(),
                registry: registry.clone(),
                clock: clock.clone(),
                issuer: config.issuer,
                leeway: config.leeway,
                assertions: config.assertions,
                client_keys,
                federation: federation.clone(),
                client_ca: config.client_ca,
                refresh_retry_window: config.refresh_retry_window,
                usage: usage.clone(),
                policy: policy.clone(),
                stats: stats.clone(),
            },
            introspection,
            registry,
            audit: AuditAdmin {
                store: store.clone(),
                usage: usage.clone(),
                clock: clock.clone(),
                retention: config.audit_retention,
            },
            keys: KeyAdmin {
                store: store.clone(),
                keys,
                clock,
                algorithm: config.algorithm,
                policy: config.key_policy,
                leeway: config.leeway,
            },
            policy,
            stats,
            replica_id: uuid::Uuid::new_v4().simple().to_string(),
            usage,
            store,
        })
    }

    /// Records that this replica is alive at `now_us` (wall-clock time) and re-divides the
    /// deployment-wide limits by the replicas that heartbeated within `live_for`. Returns the
    /// live count.
    pub async fn heartbeat(&self, now_us: i64, live_for: Duration) -> Result<u32> {
        let live_after = now_us.saturating_sub(i64::try_from(live_for.as_micros()).unwrap_or(0));
        let live = self
            .store
            .heartbeat(&self.replica_id, now_us, live_after)
            .await?;
        self.policy.set_replicas(live);
        let registry = &self.registry;
        self.policy.forget_idle(
            |id, kind| registry.client(id).map(|c| kind.of(&c)),
            clock::to_micros(self.tokens.clock.now()),
        );
        Ok(live)
    }

    /// The state now of each signing key this replica holds.
    pub fn key_states(&self) -> Vec<KeyState> {
        self.keys.keys.states_now()
    }

    /// The database connection pool as it is now.
    pub fn pool_stats(&self) -> crate::store::PoolStats {
        self.store.pool_stats()
    }

    /// Where the database stands now, as the sync loop last found.
    pub fn database_state(&self) -> crate::store::DatabaseState {
        self.store.availability().state()
    }

    /// Which backend the store is: `postgres` or `sqlite`.
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// Changes of where the database stands, as the sync loop finds.
    pub fn database_changes(&self) -> tokio::sync::watch::Receiver<crate::store::DatabaseState> {
        self.store.availability().subscribe()
    }

    /// Removes this replica from the heartbeat table (on a graceful stop), so the others
    /// take over its share at their next heartbeat.
    pub async fn leave(&self) {
        if let Err(err) = self.store.leave(&self.replica_id).await {
            tracing::warn!(error = %err, "could not remove this replica's heartbeat");
        }
    }

    /// Writes the batched last-use times; returns how many clients were written.
    pub async fn flush_usage(&self) -> usize {
        self.usage.flush(&self.store).await
    }
}
