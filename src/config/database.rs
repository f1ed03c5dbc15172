//! `[database]`: which store, how many connections, whether to migrate at startup.

use std::path::PathBuf;

use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use super::ConfigError;

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

/// `[database]`, checked. The URL stays a secret: it may hold a password.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: SecretString,
    pub max_connections: u32,
    pub migrate_on_start: bool,
}

impl DatabaseSettings {
    pub(super) fn resolve(&self) -> Result<DatabaseConfig, ConfigError> {
        let url = self.url.expose_secret();
        if !(url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.starts_with("sqlite:"))
        {
            return Err(ConfigError(
                "database.url must start with postgres://, postgresql:// or sqlite:".into(),
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError(
                "database.max_connections must be at least 1".into(),
            ));
        }
        Ok(DatabaseConfig {
            url: self.url.clone(),
            max_connections: self.max_connections,
            migrate_on_start: self.migrate_on_start,
        })
    }
}

impl DatabaseConfig {
    /// Whether the database is the embedded SQLite file (which may keep its own KEK).
    pub fn is_sqlite(&self) -> bool {
        self.url.expose_secret().starts_with("sqlite:")
    }

    /// Where a generated KEK is kept beside the SQLite file: `<file>.kek`. `None` for Postgres
    /// and for an in-memory database, which have no such place.
    pub(super) fn default_kek_file(&self) -> Option<PathBuf> {
        let url = self.url.expose_secret();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with_url(url: &str) -> Result<DatabaseConfig, ConfigError> {
        DatabaseSettings {
            url: SecretString::from(url),
            ..DatabaseSettings::default()
        }
        .resolve()
    }

    #[test]
    fn the_kek_file_sits_beside_a_sqlite_file_only() {
        let file = |url: &str| with_url(url).unwrap().default_kek_file();
        assert_eq!(
            file("sqlite://data/t.db?mode=rwc"),
            Some("data/t.db.kek".into())
        );
        assert_eq!(file("sqlite::memory:"), None);
        assert_eq!(file("postgres://db/tokend"), None);
        assert!(with_url("mysql://db").is_err());
    }
}
