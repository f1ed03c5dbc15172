//! Settings: built-in defaults, then an optional file (`--config`, TOML), then environment
//! variables `TOKEND__SECTION__KEY` (e.g. `TOKEND__SERVER__ADDR`). Everything is validated
//! before anything binds or connects; a bad value is one clear line and exit code 64.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use ipnet::IpNet;

mod ext_authz;
mod limits;
mod tls;

pub use ext_authz::{ExtAuthzSettings, RouteSettings};
pub use limits::LimitsSettings;
pub use tls::{ClientAuth, TlsSettings};

use crate::domain::{
    CacheConfig, DomainConfig, HashParams, Kek, KekSet, KeyPolicy, LockoutConfig, PolicyConfig,
    SigningAlgorithm, SyncConfig,
};

/// Exit code for a configuration error (EX_CONFIG... sysexits' EX_USAGE, 64).
pub const EXIT_CONFIG: i32 = 64;

/// A configuration problem, worded for the operator.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// All of tokend's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub tokens: TokenSettings,
    pub keys: KeySettings,
    pub secrets: SecretSettings,
    pub introspection: IntrospectionSettings,
    pub sync: SyncSettings,
    pub audit: AuditSettings,
    pub log: LogSettings,
    pub ext_authz: ExtAuthzSettings,
    pub metrics: MetricsSettings,
    pub limits: LimitsSettings,
}

/// `[metrics]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Where Prometheus metrics are served (`GET /metrics`), e.g. `0.0.0.0:9090`; a port of
    /// their own, never the API port. Unset: no metrics port, and requests are not counted.
    pub addr: Option<SocketAddr>,
}

/// `[audit]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// Days audit events and per-client usage are kept (1-3650); older ones are purged.
    pub retention_days: u32,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self { retention_days: 90 }
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// gRPC listen address. `TOKEND__SERVER__ADDR`.
    pub addr: SocketAddr,
    /// Seconds in-flight calls get to finish after SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
    /// CIDRs of reverse proxies / mesh sidecars whose `x-forwarded-for` is believed; empty:
    /// the TCP peer is always the client. `TOKEND__SERVER__TRUSTED_PROXIES=10.0.0.0/8,::1/128`.
    pub trusted_proxies: Vec<String>,
    /// IssueToken + RefreshToken calls per minute from one source address (IPv6: per /64),
    /// whatever the client, for the whole deployment; 0: off.
    pub token_endpoint_rate_per_minute: u32,
    /// How clients reach tokend when it sits behind a proxy (`https://auth.example.com`): the
    /// base of the endpoint URLs in the RFC 8414 metadata.
    pub public_url: Option<String>,
    /// TLS on this port; plaintext when unset.
    pub tls: TlsSettings,
    /// A plaintext port serving only `grpc.health.v1.Health` (the same statuses as the API
    /// port), for probes that cannot speak TLS, such as Kubernetes' gRPC probes.
    pub health_addr: Option<SocketAddr>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            shutdown_grace_secs: 10,
            trusted_proxies: Vec::new(),
            token_endpoint_rate_per_minute: 0,
            public_url: None,
            tls: TlsSettings::default(),
            health_addr: None,
        }
    }
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://...` or `sqlite://path`. `TOKEND__DATABASE__URL`. May hold a password.
    pub url: SecretString,
    pub max_connections: u32,
    /// Apply migrations at startup (else run `tokend migrate` first).
    pub migrate_on_start: bool,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("sqlite://tokend.db"),
            max_connections: 10,
            migrate_on_start: true,
        }
    }
}

/// `[tokens]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    /// `iss` of every token; also the audience of tokens meant for tokend itself.
    pub issuer: String,
    /// Clock skew tolerated when checking `exp`/`nbf`, seconds.
    pub leeway_secs: u64,
    /// How long a spent refresh token may be presented again by its client and get the same
    /// successor (the earlier response was lost), seconds. 0 turns the window off.
    pub refresh_retry_window_secs: u64,
    /// How often clients' `last_used_time` is written, seconds. Issuing a token records it
    /// in memory only; a crash loses at most this much of it.
    pub last_used_flush_secs: u64,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            issuer: "urn:tokend".into(),
            leeway_secs: 5,
            refresh_retry_window_secs: 5,
            last_used_flush_secs: 10,
        }
    }
}

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

/// `[keys]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeySettings {
    /// `EdDSA` (default), `ES256` or `RS256`. A change applies from the next rotation.
    pub algorithm: String,
    /// Key-encryption keys: base64 of 32 random bytes each, comma-separated, the current one
    /// first (it seals every new key), then previous ones, which only open the keys they
    /// sealed until `tokend kek rotate` re-seals those. Usually one. Required with Postgres.
    pub kek: Option<SecretString>,
    /// Where the embedded default keeps a generated KEK (the same list format); default:
    /// beside the SQLite file. Ignored when `kek` is set.
    pub kek_file: Option<PathBuf>,
    /// Seconds a new key is published before it signs. At least the JWKS max-age plus
    /// `reload_secs`, so every replica serves it and every verifier's cached JWKS holds it
    /// before the first token it signs.
    pub prepublish_secs: u64,
    /// Seconds between rereads of the stored keys (rotations made by other replicas) and
    /// automatic-rotation checks.
    pub reload_secs: u64,
    /// Rotate when the newest key is this many seconds old; 0: only by hand.
    pub rotation_interval_secs: u64,
}

impl Default for KeySettings {
    fn default() -> Self {
        Self {
            algorithm: "EdDSA".into(),
            kek: None,
            kek_file: None,
            prepublish_secs: 600,
            reload_secs: 10,
            rotation_interval_secs: 30 * 24 * 3600,
        }
    }
}

/// `[secrets]`: argon2id cost. Each verification costs about `memory_kib` KiB of RAM and, at
/// the defaults (19456 KiB, 2 iterations, 1 lane), about 11 ms of one core.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretSettings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hash computations allowed at once; 0 means one fewer than the CPUs (at least 1), so a
    /// burst of logins or of wrong secrets always leaves a core to `Introspect`.
    pub max_concurrent_hashes: usize,
    /// How long a replica remembers a secret it verified, seconds (0: never; every
    /// `IssueToken` then costs one argon2 verification). The memory holds an HMAC under a
    /// per-process random key, never the secret; a rotation, disable or deletion of the client
    /// forgets it at once on every replica.
    pub verified_cache_secs: u64,
    /// How many verified secrets a replica remembers (about 100 bytes each).
    pub verified_cache_entries: usize,
    /// Failed authentications of one client_id, or from one address, within
    /// `failure_window_secs` that lock it (for the whole deployment); 0 turns lockout off.
    pub max_failures: u32,
    /// The failure-counting window, and how long a client_id stays locked, seconds
    /// (an address's lock doubles with each further lock, up to an hour).
    pub failure_window_secs: u64,
    /// Milliseconds a refusal of a locked client_id or address is held before it is answered
    /// (0-10000), so a guessing loop gets a few answers a second.
    pub lockout_delay_ms: u64,
}

impl Default for SecretSettings {
    fn default() -> Self {
        let p = HashParams::default();
        Self {
            memory_kib: p.memory_kib,
            iterations: p.iterations,
            parallelism: p.parallelism,
            max_concurrent_hashes: 0,
            verified_cache_secs: 300,
            verified_cache_entries: 10_000,
            max_failures: 10,
            failure_window_secs: 300,
            lockout_delay_ms: 1000,
        }
    }
}

/// `[introspection]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntrospectionSettings {
    /// Require a caller token with scope `tokend.introspect` (RFC 7662 section 2.1). Turn off
    /// only where the network (e.g. an mTLS mesh) already restricts who can call.
    pub require_auth: bool,
    /// How many verified tokens each replica keeps, so a token's signature (or an opaque
    /// token's database row) is checked once, not on every call. Revocation still counts at
    /// once: it is checked on every call. 0 turns the cache off.
    pub cache_entries: usize,
}

impl Default for IntrospectionSettings {
    fn default() -> Self {
        Self {
            require_auth: true,
            cache_entries: 100_000,
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `human` or `json`.
    pub format: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: "human".into(),
        }
    }
}

impl Settings {
    /// Loads defaults, then `file` if given, then `TOKEND__*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("TOKEND")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("server.trusted_proxies"),
        );
        let settings: Settings = builder
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|e| ConfigError(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every value that can be checked without I/O.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = self.database.url.expose_secret();
        if !(url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.starts_with("sqlite:"))
        {
            return Err(ConfigError(
                "database.url must start with postgres://, postgresql:// or sqlite:".into(),
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError(
                "database.max_connections must be at least 1".into(),
            ));
        }
        if self.tokens.issuer.trim().is_empty() {
            return Err(ConfigError("tokens.issuer must not be empty".into()));
        }
        SigningAlgorithm::parse(&self.keys.algorithm)
            .map_err(|e| ConfigError(format!("keys.algorithm: {e}")))?;
        self.keys.validate_rotation()?;
        if let Some(kek) = &self.keys.kek {
            KekSet::parse(kek.expose_secret())
                .map_err(|e| ConfigError(format!("keys.kek: {e}")))?;
        } else if !self.is_sqlite() {
            return Err(ConfigError(
                "keys.kek (TOKEND__KEYS__KEK) is required with Postgres: base64 of 32 random bytes, e.g. `openssl rand -base64 32`".into(),
            ));
        }
        self.hash_params()
            .validate()
            .map_err(|e| ConfigError(format!("secrets: {e}")))?;
        if self.tokens.refresh_retry_window_secs > 60 {
            return Err(ConfigError(
                "tokens.refresh_retry_window_secs must be at most 60: it is how long a stolen, \
                 already used refresh token still works"
                    .into(),
            ));
        }
        if !(10..=60_000).contains(&self.sync.poll_interval_ms) {
            return Err(ConfigError(
                "sync.poll_interval_ms must be between 10 and 60000".into(),
            ));
        }
        if !(1..=3600).contains(&self.tokens.last_used_flush_secs) {
            return Err(ConfigError(
                "tokens.last_used_flush_secs must be between 1 and 3600".into(),
            ));
        }
        if self.secrets.verified_cache_secs > 3600 {
            return Err(ConfigError(
                "secrets.verified_cache_secs must be at most 3600".into(),
            ));
        }
        self.trusted_proxies()?;
        if let Some(url) = &self.server.public_url
            && !((url.starts_with("https://") || url.starts_with("http://"))
                && url.len() > 8
                && !url.contains(char::is_whitespace))
        {
            return Err(ConfigError(format!(
                "server.public_url must be an http(s) URL such as https://auth.example.com, not {url:?}"
            )));
        }
        if !(1..=3600).contains(&self.secrets.failure_window_secs) {
            return Err(ConfigError(
                "secrets.failure_window_secs must be between 1 and 3600".into(),
            ));
        }
        if self.secrets.lockout_delay_ms > 10_000 {
            return Err(ConfigError(
                "secrets.lockout_delay_ms must be at most 10000".into(),
            ));
        }
        if !(1..=3650).contains(&self.audit.retention_days) {
            return Err(ConfigError(
                "audit.retention_days must be between 1 and 3650".into(),
            ));
        }
        if !(100..=60_000).contains(&self.sync.heartbeat_ms) {
            return Err(ConfigError(
                "sync.heartbeat_ms must be between 100 and 60000".into(),
            ));
        }
        if self.sync.max_staleness_secs != 0
            && self.sync.max_staleness_secs * 1000 < 2 * self.sync.poll_interval_ms
        {
            return Err(ConfigError(
                "sync.max_staleness_secs must be 0 (no limit) or at least twice \
                 sync.poll_interval_ms, else a healthy replica would refuse to answer"
                    .into(),
            ));
        }
        if self.sync.purge_interval_secs == 0 {
            return Err(ConfigError(
                "sync.purge_interval_secs must be at least 1".into(),
            ));
        }
        self.ext_authz.validate()?;
        self.server.tls.validate()?;
        self.limits.validate()?;
        if !self.introspection.require_auth && !self.server.tls.requires_client_certificates() {
            return Err(ConfigError(
                "introspection.require_auth = false lets anyone who reaches the port introspect; \
                 it is allowed only with client certificates required (server.tls.client_ca_file, \
                 server.tls.client_auth = \"required\")"
                    .into(),
            ));
        }
        match self.log.format.as_str() {
            "human" | "json" => Ok(()),
            other => Err(ConfigError(format!(
                "log.format must be \"human\" or \"json\", not {other:?}"
            ))),
        }
    }

    fn trusted_proxies(&self) -> Result<Vec<IpNet>, ConfigError> {
        self.server
            .trusted_proxies
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                let raw = raw.trim();
                raw.parse::<IpNet>()
                    .or_else(|_| raw.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        ConfigError(format!(
                            "server.trusted_proxies[{i}]: {raw:?} is not a CIDR (e.g. 10.0.0.0/8) or an address"
                        ))
                    })
            })
            .collect()
    }

    fn audit_retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.audit.retention_days) * 86_400)
    }

    /// How often this replica heartbeats, and how long a heartbeat counts as live.
    pub fn heartbeat(&self) -> (Duration, Duration) {
        let period = Duration::from_millis(self.sync.heartbeat_ms);
        (period, period * 3)
    }

    /// Whether the database is the embedded SQLite file.
    pub fn is_sqlite(&self) -> bool {
        self.database.url.expose_secret().starts_with("sqlite:")
    }

    fn hash_params(&self) -> HashParams {
        HashParams {
            memory_kib: self.secrets.memory_kib,
            iterations: self.secrets.iterations,
            parallelism: self.secrets.parallelism,
        }
    }

    /// How often to reread the stored signing keys and check for a due rotation.
    pub fn key_reload_period(&self) -> Duration {
        Duration::from_secs(self.keys.reload_secs)
    }

    /// The domain's view of these settings.
    pub fn domain(&self) -> DomainConfig {
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        DomainConfig {
            issuer: self.tokens.issuer.clone(),
            leeway: Duration::from_secs(self.tokens.leeway_secs),
            hash_params: self.hash_params(),
            hash_concurrency: match self.secrets.max_concurrent_hashes {
                0 => cpus.saturating_sub(1).max(1),
                n => n,
            },
            algorithm: SigningAlgorithm::parse(&self.keys.algorithm)
                .unwrap_or(SigningAlgorithm::EdDsa),
            introspection_requires_auth: self.introspection.require_auth,
            max_staleness: match self.sync.max_staleness_secs {
                0 => None,
                n => Some(Duration::from_secs(n)),
            },
            refresh_retry_window: Duration::from_secs(self.tokens.refresh_retry_window_secs),
            key_policy: KeyPolicy {
                prepublish: Duration::from_secs(self.keys.prepublish_secs),
                rotation_interval: match self.keys.rotation_interval_secs {
                    0 => None,
                    n => Some(Duration::from_secs(n)),
                },
            },
            caches: CacheConfig {
                token_entries: self.introspection.cache_entries,
                secret_entries: self.secrets.verified_cache_entries,
                secret_ttl: Duration::from_secs(self.secrets.verified_cache_secs),
            },
            policy: PolicyConfig {
                trusted_proxies: self.trusted_proxies().unwrap_or_default(),
                address_rate_per_minute: self.server.token_endpoint_rate_per_minute,
            },
            lockout: LockoutConfig {
                max_failures: self.secrets.max_failures,
                window: Duration::from_secs(self.secrets.failure_window_secs),
                delay: Duration::from_millis(self.secrets.lockout_delay_ms),
            },
            audit_retention: self.audit_retention(),
        }
    }

    /// How often batched last-use times are written.
    pub fn usage_flush_period(&self) -> Duration {
        Duration::from_secs(self.tokens.last_used_flush_secs)
    }

    /// The sync loop's settings.
    pub fn sync(&self) -> SyncConfig {
        SyncConfig {
            poll_interval: Duration::from_millis(self.sync.poll_interval_ms),
            purge_interval: Duration::from_secs(self.sync.purge_interval_secs),
            audit_retention: self.audit_retention(),
        }
    }

    /// The configured KEKs (current first) or, for the embedded SQLite default only, those kept
    /// in a file beside the database (one generated on first use, mode 0600).
    pub fn load_kek(&self) -> anyhow::Result<KekSet> {
        if let Some(kek) = &self.keys.kek {
            return KekSet::parse(kek.expose_secret()).map_err(|e| anyhow::anyhow!(e));
        }
        let path = self.kek_file_path().ok_or_else(|| {
            anyhow::anyhow!(
                "keys.kek is required: an in-memory database has no place to keep a generated one"
            )
        })?;
        if path.exists() {
            let text = std::fs::read_to_string(&path)?;
            return KekSet::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
        }
        let (kek, text) = Kek::generate()?;
        write_private(&path, &text)?;
        tracing::warn!(
            path = %path.display(),
            kek_id = kek.id(),
            "generated a key-encryption key for the embedded database; back it up with the database, \
             or set keys.kek (TOKEND__KEYS__KEK) in production"
        );
        Ok(KekSet::from(kek))
    }

    fn kek_file_path(&self) -> Option<PathBuf> {
        if let Some(path) = &self.keys.kek_file {
            return Some(path.clone());
        }
        let url = self.database.url.expose_secret();
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))?;
        let path = path.split('?').next()?;
        if path.is_empty() || path.contains(":memory:") {
            return None;
        }
        Some(PathBuf::from(format!("{path}.kek")))
    }
}

impl KeySettings {
    fn validate_rotation(&self) -> Result<(), ConfigError> {
        let max_age = crate::domain::JWKS_MAX_AGE.as_secs();
        if self.reload_secs == 0 {
            return Err(ConfigError("keys.reload_secs must be at least 1".into()));
        }
        let floor = max_age.saturating_add(self.reload_secs);
        if self.prepublish_secs < floor {
            return Err(ConfigError(format!(
                "keys.prepublish_secs ({}) must be at least {floor}: the JWKS max-age ({max_age}s) \
                 plus keys.reload_secs ({}s), so every replica and every verifier's cached JWKS \
                 has a new key before it signs",
                self.prepublish_secs, self.reload_secs
            )));
        }
        if self.prepublish_secs > crate::domain::MAX_PREPUBLISH.as_secs() {
            return Err(ConfigError(format!(
                "keys.prepublish_secs must be at most {}",
                crate::domain::MAX_PREPUBLISH.as_secs()
            )));
        }
        if self.rotation_interval_secs != 0 && self.rotation_interval_secs <= self.prepublish_secs {
            return Err(ConfigError(format!(
                "keys.rotation_interval_secs ({}) must be 0 (manual rotation only) or longer than \
                 keys.prepublish_secs ({}), or no new key would ever activate",
                self.rotation_interval_secs, self.prepublish_secs
            )));
        }
        Ok(())
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_embedded() {
        let s = Settings::default();
        s.validate().unwrap();
        assert!(s.is_sqlite());
        assert_eq!(s.kek_file_path().unwrap(), PathBuf::from("tokend.db.kek"));
    }

    #[test]
    fn postgres_needs_a_kek() {
        let mut s = Settings::default();
        s.database.url = SecretString::from("postgres://localhost/tokend");
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("keys.kek"), "{err}");
        s.keys.kek = Some(SecretString::from("c2hvcnQ="));
        assert!(s.validate().unwrap_err().to_string().contains("32 bytes"));
    }

    fn kek_text() -> String {
        Kek::generate().unwrap().1
    }

    fn ids(keks: &KekSet) -> Vec<String> {
        keks.ids().into_iter().map(str::to_owned).collect()
    }

    #[test]
    fn keys_kek_lists_the_current_kek_first() {
        let (new, old) = (kek_text(), kek_text());
        let expected = ids(&KekSet::parse(&format!("{new},{old}")).unwrap());
        assert_eq!(expected.len(), 2);
        assert_eq!(expected[0], Kek::from_base64(&new).unwrap().id());
        let mut s = Settings::default();
        s.keys.kek = Some(SecretString::from(format!("{new}, {old}")));
        s.validate().unwrap();
        assert_eq!(ids(&s.load_kek().unwrap()), expected);
        s.keys.kek = Some(SecretString::from(new.clone()));
        assert_eq!(ids(&s.load_kek().unwrap()), expected[..1]);
    }

    #[test]
    fn a_bad_kek_in_the_list_is_named_and_never_echoed() {
        let (new, old) = (kek_text(), kek_text());
        let mut s = Settings::default();
        s.database.url = SecretString::from("postgres://localhost/tokend");
        s.keys.kek = Some(SecretString::from(format!("{new},c2hvcnQ=")));
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("keys.kek: entry 2 of 2: "), "{err}");
        assert!(err.contains("32 bytes"), "{err}");
        s.keys.kek = Some(SecretString::from(format!("{new},{old},{new}")));
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.contains("entry 3 of 3") && err.contains("twice"),
            "{err}"
        );
        assert!(!err.contains(&new) && !err.contains(&old), "{err}");
        s.keys.kek = Some(SecretString::from(","));
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.contains("keys.kek: no key-encryption key given"),
            "{err}"
        );
    }

    #[test]
    fn keys_kek_loads_from_toml_as_one_string_or_one_per_line() {
        let (new, old) = (kek_text(), kek_text());
        let expected = ids(&KekSet::parse(&format!("{new},{old}")).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokend.toml");
        for value in [
            format!("\"{new},{old}\""),
            format!("\"\"\"\n{new}\n{old}\n\"\"\""),
        ] {
            std::fs::write(&path, format!("[keys]\nkek = {value}\n")).unwrap();
            let s = Settings::load(Some(&path)).unwrap();
            assert_eq!(ids(&s.load_kek().unwrap()), expected, "{value}");
        }
    }

    #[test]
    fn the_kek_file_may_list_previous_keks_too() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Settings::default();
        s.database.url = SecretString::from(format!(
            "sqlite://{}",
            dir.path().join("tokend.db").display()
        ));
        let generated = ids(&s.load_kek().unwrap());
        let file = dir.path().join("tokend.db.kek");
        let first = std::fs::read_to_string(&file).unwrap();
        assert_eq!(
            ids(&s.load_kek().unwrap()),
            generated,
            "read back, not regenerated"
        );
        let new = kek_text();
        std::fs::write(&file, format!("{new}\n{first}\n")).unwrap();
        let both = ids(&s.load_kek().unwrap());
        assert_eq!(both[0], Kek::from_base64(&new).unwrap().id());
        assert_eq!(both[1..], generated);
    }

    #[test]
    fn bad_values_are_named() {
        let mut s = Settings::default();
        s.keys.algorithm = "HS256".into();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("keys.algorithm")
        );
        let mut s = Settings::default();
        s.keys.algorithm = "RS256".into();
        s.validate().unwrap();
        let mut s = Settings::default();
        s.log.format = "xml".into();
        assert!(s.validate().unwrap_err().to_string().contains("log.format"));
    }

    #[test]
    fn tls_settings_are_checked() {
        let err = |s: &Settings| s.validate().unwrap_err().to_string();
        let mut s = Settings::default();
        s.server.tls.cert_file = Some("tls.crt".into());
        assert!(err(&s).contains("go together"), "{}", err(&s));
        s.server.tls.key_file = Some("tls.key".into());
        s.validate().unwrap();
        s.server.tls.reload_secs = 0;
        assert!(err(&s).contains("reload_secs"));
        s.server.tls.reload_secs = 10;
        // Open introspection: only with client certificates required.
        s.introspection.require_auth = false;
        assert!(err(&s).contains("introspection.require_auth"));
        s.server.tls.client_ca_file = Some("ca.crt".into());
        s.server.tls.client_auth = ClientAuth::Optional;
        assert!(err(&s).contains("introspection.require_auth"));
        s.server.tls.client_auth = ClientAuth::Required;
        s.validate().unwrap();
        let mut s = Settings::default();
        s.server.tls.client_ca_file = Some("ca.crt".into());
        assert!(err(&s).contains("client_ca_file needs"));
    }

    #[test]
    fn key_rotation_settings_are_checked() {
        let mut s = Settings::default();
        s.keys.prepublish_secs = 300;
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.contains("keys.prepublish_secs (300) must be at least 310"),
            "{err}"
        );
        s.keys.prepublish_secs = 310;
        s.validate().unwrap();
        s.keys.reload_secs = 0;
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("reload_secs")
        );
        s.keys.reload_secs = 10;
        s.keys.rotation_interval_secs = 310;
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("rotation_interval_secs"), "{err}");
        s.keys.rotation_interval_secs = 0;
        s.validate().unwrap();
        assert_eq!(s.domain().key_policy.rotation_interval, None);
    }

    #[test]
    fn policy_settings_are_checked() {
        let mut s = Settings::default();
        s.server.trusted_proxies = vec!["10.0.0.0/8".into(), "::1".into()];
        s.validate().unwrap();
        assert_eq!(s.domain().policy.trusted_proxies.len(), 2);
        s.server.trusted_proxies.push("10.0.0.0/33".into());
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("server.trusted_proxies[2]"), "{err}");
        let mut s = Settings::default();
        s.secrets.failure_window_secs = 0;
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("failure_window_secs")
        );
        let mut s = Settings::default();
        s.sync.heartbeat_ms = 10;
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("heartbeat_ms")
        );
    }

    #[test]
    fn file_values_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokend.toml");
        std::fs::write(
            &path,
            "[server]\naddr = \"127.0.0.1:6000\"\n[tokens]\nissuer = \"https://auth\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path)).unwrap();
        assert_eq!(s.server.addr.port(), 6000);
        assert_eq!(s.tokens.issuer, "https://auth");
        std::fs::write(
            &path,
            "[ext_authz]\nenabled = true\n[[ext_authz.routes]]\npath_prefix = \"/orders\"\n\
             methods = [\"POST\"]\nscopes = [\"orders:write\"]\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path)).unwrap();
        assert!(s.ext_authz.enabled);
        assert_eq!(s.ext_authz.routes[0].scopes, ["orders:write"]);
        std::fs::write(&path, "[[ext_authz.routes]]\npath_prefix = \"orders\"\n").unwrap();
        let err = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("ext_authz.routes[0].path_prefix"), "{err}");
        std::fs::write(&path, "[server]\nadr = \"x\"\n").unwrap();
        assert!(Settings::load(Some(&path)).is_err());
    }
}
