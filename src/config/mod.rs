//! Settings: built-in defaults, then an optional file (`--config`, TOML), then environment
//! variables `TOKEND__SECTION__KEY` (e.g. `TOKEND__SERVER__ADDR`). Everything is checked
//! before anything binds or connects; a bad value is one clear line and exit code 64.
//!
//! Two shapes, one per job:
//! - [`Settings`] is what an operator writes: one struct per section (a file each here), raw
//!   fields under their documented names (`sync.poll_interval_ms`), deserialised as they are.
//!   Tests build it by hand.
//! - [`Config`] is what the program reads: [`Settings::resolve`] checks every section and turns
//!   it into typed values (`Duration`s, enums, parsed CIDRs and route rules) once. Nothing
//!   after it parses a string or converts a number of seconds again.
//!
//! Calls flow `main`/`server` -> `config` -> `domain` (for the domain's own value types).

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

mod assertions;
mod audit;
mod database;
mod ext_authz;
mod federation;
mod introspection;
mod keys;
mod limits;
mod log;
mod metrics;
mod secrets;
mod server;
mod sync;
mod tls;
mod tokens;

pub use assertions::{AssertionSettings, AssertionsConfig};
pub use audit::{AuditConfig, AuditSettings};
pub use database::{DatabaseConfig, DatabaseSettings};
pub use ext_authz::{ExtAuthzConfig, ExtAuthzSettings, RouteSettings};
pub use federation::{FederationSettings, IssuerConfig, IssuerSettings};
pub use introspection::IntrospectionSettings;
pub use keys::{KekSource, KeySettings, KeysConfig};
pub use limits::{LimitsConfig, LimitsSettings};
pub use log::{LogFormat, LogSettings};
pub use metrics::MetricsSettings;
pub use secrets::{SecretSettings, SecretsConfig};
pub use server::{ServerConfig, ServerSettings};
pub use sync::{SyncSettings, SyncTiming};
pub use tls::{ClientAuth, TlsConfig, TlsSettings};
pub use tokens::{TokenSettings, TokensConfig};

use crate::domain::federation::KeySources;
use crate::domain::{AssertionRules, DomainConfig, PolicyConfig, SyncConfig};

/// Exit code for a configuration error (sysexits' EX_USAGE, 64), so an orchestrator can tell
/// "fix the config" from a crash.
pub const EXIT_CONFIG: i32 = 64;

/// A configuration problem, worded for the operator: the setting's name and what it must be.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// `Ok` when `ok`, else the error `<section>.<message>`: the range checks of a section.
    pub(crate) fn unless(ok: bool, section: &str, message: &str) -> Result<(), Self> {
        if ok {
            Ok(())
        } else {
            Err(Self(format!("{section}.{message}")))
        }
    }
}

/// All of tokend's settings, as written (see the README's settings table).
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
    pub assertions: AssertionSettings,
    pub federation: FederationSettings,
}

/// The checked settings in the types the program uses, section by section as in [`Settings`].
/// Built only by [`Settings::resolve`], so holding one means every value was checked.
#[derive(Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub tokens: TokensConfig,
    pub keys: KeysConfig,
    pub secrets: SecretsConfig,
    pub introspection: IntrospectionSettings,
    pub sync: SyncTiming,
    pub audit: AuditConfig,
    pub log: LogFormat,
    /// Envoy external authorization; `None` when disabled.
    pub ext_authz: Option<ExtAuthzConfig>,
    /// Where Prometheus metrics are served; `None`: no metrics port.
    pub metrics_addr: Option<SocketAddr>,
    pub limits: LimitsConfig,
    /// Longest lifetime of a client assertion; how often key sets are fetched again.
    pub assertions: AssertionsConfig,
    /// The workload-identity issuers trusted.
    pub federation: Vec<IssuerConfig>,
}

impl Settings {
    /// Loads defaults, then `file` if given, then `TOKEND__*` environment variables. Only
    /// deserialises (unknown keys and ill-typed values are errors); [`Settings::resolve`]
    /// checks the values.
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
        builder
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|e| ConfigError(e.to_string()))
    }

    /// Checks every value that can be checked without I/O and returns them typed. The one
    /// place settings are validated: `Config::load` and `Application::build` both come here.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let database = self.database.resolve()?;
        let tokens = self.tokens.resolve()?;
        let keys = self.keys.resolve(&database)?;
        let secrets = self.secrets.resolve()?;
        let sync = self.sync.resolve()?;
        let server = self.server.resolve()?;
        let audit = self.audit.resolve()?;
        let ext_authz = self.ext_authz.resolve()?;
        let limits = self.limits.resolve()?;
        self.introspection.check(server.tls.as_ref())?;
        let log = self.log.resolve()?;
        let assertions = self.assertions.resolve()?;
        let federation = self.federation.resolve()?;
        Ok(Config {
            server,
            database,
            tokens,
            keys,
            secrets,
            introspection: self.introspection.clone(),
            sync,
            audit,
            log,
            ext_authz,
            metrics_addr: self.metrics.addr,
            limits,
            assertions,
            federation,
        })
    }

    /// Whether [`Settings::resolve`] would accept these settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.resolve().map(|_| ())
    }
}

impl Config {
    /// [`Settings::load`] then [`Settings::resolve`]: what `main` does before anything else,
    /// so a bad setting exits 64 before a port is bound or a database reached.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Settings::load(file)?.resolve()
    }

    /// The domain's view of these settings.
    pub fn domain(&self) -> DomainConfig {
        DomainConfig {
            issuer: self.tokens.issuer.clone(),
            leeway: self.tokens.leeway,
            assertions: AssertionRules::new(
                &self.tokens.issuer,
                self.server.public_url.as_deref(),
                self.assertions.max_lifetime,
            ),
            hash_params: self.secrets.hash_params,
            hash_concurrency: self.secrets.hash_concurrency,
            algorithm: self.keys.algorithm,
            introspection_requires_auth: self.introspection.require_auth,
            max_staleness: self.sync.max_staleness,
            refresh_retry_window: self.tokens.refresh_retry_window,
            key_policy: self.keys.policy.clone(),
            caches: self.secrets.caches(self.introspection.cache_entries),
            policy: PolicyConfig {
                trusted_proxies: self.server.trusted_proxies.clone(),
                address_rate_per_minute: self.server.token_endpoint_rate_per_minute,
            },
            lockout: self.secrets.lockout,
            audit_retention: self.audit.retention,
            federation: self.federation.iter().map(|i| i.rules.clone()).collect(),
            key_sources: KeySources::default(),
            // Loaded with the TLS files, by the server (`server::tls`).
            client_ca: None,
        }
    }

    /// The sync loop's settings.
    pub fn sync(&self) -> SyncConfig {
        SyncConfig {
            poll_interval: self.sync.poll_interval,
            purge_interval: self.sync.purge_interval,
            audit_retention: self.audit.retention,
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn defaults_are_valid_and_embedded() {
        let s = Settings::default();
        s.validate().unwrap();
        let config = s.resolve().unwrap();
        assert!(config.database.is_sqlite());
        assert!(
            matches!(&config.keys.keks, KekSource::File(path) if path == Path::new("tokend.db.kek")),
            "the default KEK file sits beside the database: {:?}",
            config.keys.keks
        );
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
    fn policy_settings_are_checked() {
        let mut s = Settings::default();
        s.server.trusted_proxies = vec!["10.0.0.0/8".into(), "::1".into()];
        s.validate().unwrap();
        assert_eq!(
            s.resolve().unwrap().domain().policy.trusted_proxies.len(),
            2
        );
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
    fn durations_are_typed_once() {
        let mut s = Settings::default();
        s.sync.poll_interval_ms = 250;
        s.sync.max_staleness_secs = 0;
        s.limits.keepalive_interval_secs = 0;
        let config = s.resolve().unwrap();
        assert_eq!(config.sync().poll_interval.as_millis(), 250);
        assert_eq!(config.domain().max_staleness, None);
        assert_eq!(config.limits.keepalive_interval, None);
        assert_eq!(config.sync.heartbeat_live_for().as_secs(), 15);
        assert_eq!(config.audit.retention.as_secs(), 90 * 86_400);
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
        let s = Config::load(Some(&path)).unwrap();
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
        assert!(!s.ext_authz.routes[0].case_sensitive, "the safe default");
        assert!(Config::load(Some(&path)).unwrap().ext_authz.is_some());
        std::fs::write(
            &path,
            "[[ext_authz.routes]]\npath_prefix = \"/Files\"\ncase_sensitive = true\n",
        )
        .unwrap();
        assert!(Settings::load(Some(&path)).unwrap().ext_authz.routes[0].case_sensitive);
        std::fs::write(
            &path,
            "[[ext_authz.routes]]\npath_prefix = \"/a\"\ncase_insensitive = true\n",
        )
        .unwrap();
        assert!(
            Settings::load(Some(&path)).is_err(),
            "unknown keys are typos"
        );
        std::fs::write(&path, "[[ext_authz.routes]]\npath_prefix = \"orders\"\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("ext_authz.routes[0].path_prefix"), "{err}");
        std::fs::write(&path, "[server]\nadr = \"x\"\n").unwrap();
        assert!(Settings::load(Some(&path)).is_err());
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
}
