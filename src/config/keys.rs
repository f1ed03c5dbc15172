//! `[keys]`: the signing algorithm, the key-encryption keys (KEKs) that seal stored keys, and
//! when keys are published, reread and rotated.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use super::ConfigError;
use super::database::DatabaseConfig;
use crate::domain::{JWKS_MAX_AGE, Kek, KekSet, KeyPolicy, MAX_PREPUBLISH, SigningAlgorithm};

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

/// `[keys]`, checked: the algorithm parsed, the configured KEKs parsed, the periods typed.
#[derive(Debug)]
pub struct KeysConfig {
    pub algorithm: SigningAlgorithm,
    /// Where the KEKs come from; opened by [`KekSource::load`].
    pub keks: KekSource,
    /// Pre-publication and automatic rotation.
    pub policy: KeyPolicy,
    /// How often to reread the stored signing keys and check for a due rotation.
    pub reload: Duration,
}

/// Where the KEKs come from. Consumed by [`KekSource::load`]: a `KekSet` holds keys, not text,
/// and is never copied.
#[derive(Debug)]
pub enum KekSource {
    /// `keys.kek`, already parsed.
    Configured(KekSet),
    /// The embedded database's file (`keys.kek_file`, or beside the SQLite file), read or
    /// created at startup.
    File(PathBuf),
    /// An in-memory SQLite database without `keys.kek`: nowhere to keep one.
    Nowhere,
}

impl KeySettings {
    pub(super) fn resolve(&self, database: &DatabaseConfig) -> Result<KeysConfig, ConfigError> {
        let algorithm = SigningAlgorithm::parse(&self.algorithm)
            .map_err(|e| ConfigError(format!("keys.algorithm: {e}")))?;
        let policy = self.policy()?;
        let keks = match &self.kek {
            Some(kek) => KekSource::Configured(
                KekSet::parse(kek.expose_secret())
                    .map_err(|e| ConfigError(format!("keys.kek: {e}")))?,
            ),
            None if !database.is_sqlite() => return Err(ConfigError(
                "keys.kek (TOKEND__KEYS__KEK) is required with Postgres: base64 of 32 random bytes, e.g. `openssl rand -base64 32`".into(),
            )),
            None => match self.kek_file.clone().or_else(|| database.default_kek_file()) {
                Some(path) => KekSource::File(path),
                None => KekSource::Nowhere,
            },
        };
        Ok(KeysConfig {
            algorithm,
            keks,
            policy,
            reload: Duration::from_secs(self.reload_secs),
        })
    }

    /// Pre-publication must outlast every cached JWKS plus a reload, and rotation must leave a
    /// new key time to activate.
    fn policy(&self) -> Result<KeyPolicy, ConfigError> {
        let max_age = JWKS_MAX_AGE.as_secs();
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
        if self.prepublish_secs > MAX_PREPUBLISH.as_secs() {
            return Err(ConfigError(format!(
                "keys.prepublish_secs must be at most {}",
                MAX_PREPUBLISH.as_secs()
            )));
        }
        if self.rotation_interval_secs != 0 && self.rotation_interval_secs <= self.prepublish_secs {
            return Err(ConfigError(format!(
                "keys.rotation_interval_secs ({}) must be 0 (manual rotation only) or longer than \
                 keys.prepublish_secs ({}), or no new key would ever activate",
                self.rotation_interval_secs, self.prepublish_secs
            )));
        }
        Ok(KeyPolicy {
            prepublish: Duration::from_secs(self.prepublish_secs),
            rotation_interval: (self.rotation_interval_secs != 0)
                .then(|| Duration::from_secs(self.rotation_interval_secs)),
        })
    }
}

impl KekSource {
    /// The KEKs (current first). From a file: read, or for the embedded SQLite default only,
    /// generated on first use and written beside the database (mode 0600).
    pub fn load(self) -> anyhow::Result<KekSet> {
        match self {
            Self::Configured(keks) => Ok(keks),
            Self::File(path) => load_or_generate(&path),
            Self::Nowhere => Err(anyhow::anyhow!(
                "keys.kek is required: an in-memory database has no place to keep a generated one"
            )),
        }
    }
}

fn load_or_generate(path: &Path) -> anyhow::Result<KekSet> {
    if path.exists() {
        let text = std::fs::read_to_string(path)?;
        return KekSet::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    let (kek, text) = Kek::generate()?;
    write_private(path, &text)?;
    tracing::warn!(
        path = %path.display(),
        kek_id = kek.id(),
        "generated a key-encryption key for the embedded database; back it up with the database, \
         or set keys.kek (TOKEND__KEYS__KEK) in production"
    );
    Ok(KekSet::from(kek))
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
    use crate::config::Settings;

    use super::*;

    fn kek_text() -> String {
        Kek::generate().unwrap().1
    }

    fn ids(keks: &KekSet) -> Vec<String> {
        keks.ids().into_iter().map(str::to_owned).collect()
    }

    /// What `settings` would open at startup.
    fn load_kek(settings: &Settings) -> KekSet {
        settings.resolve().unwrap().keys.keks.load().unwrap()
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
        assert_eq!(ids(&load_kek(&s)), expected);
        s.keys.kek = Some(SecretString::from(new.clone()));
        assert_eq!(ids(&load_kek(&s)), expected[..1]);
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
            assert_eq!(ids(&load_kek(&s)), expected, "{value}");
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
        let generated = ids(&load_kek(&s));
        let file = dir.path().join("tokend.db.kek");
        let first = std::fs::read_to_string(&file).unwrap();
        assert_eq!(ids(&load_kek(&s)), generated, "read back, not regenerated");
        let new = kek_text();
        std::fs::write(&file, format!("{new}\n{first}\n")).unwrap();
        let both = ids(&load_kek(&s));
        assert_eq!(both[0], Kek::from_base64(&new).unwrap().id());
        assert_eq!(both[1..], generated);
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
        let config = s.resolve().unwrap();
        assert_eq!(config.domain().key_policy.rotation_interval, None);
    }
}
