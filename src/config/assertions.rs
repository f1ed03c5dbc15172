//! `[assertions]`: how long a client assertion (`private_key_jwt`, RFC 7523) may live, and how
//! often a key set (a client's `jwks_uri`, a federated issuer's keys) may be fetched again for
//! an assertion that names a key tokend has not seen.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::domain::DEFAULT_ASSERTION_LIFETIME;

/// Longest `max_lifetime_secs` accepted: an assertion is a bearer credential until it is used,
/// and its `jti` is stored until it expires.
const MAX_LIFETIME_SECS: u64 = 3600;
/// Default least time between two fetches of one key set prompted by unknown `kid`s.
const DEFAULT_REFETCH_SECS: u64 = 30;

/// `[assertions]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssertionSettings {
    /// Longest time from an assertion's `iat` (or now, without one) to its `exp`, seconds
    /// (1-3600).
    pub max_lifetime_secs: u64,
    /// Least time between two fetches of one key set prompted by an assertion naming an
    /// unknown `kid`, seconds (1-3600): how soon a rotated key is found, and how often
    /// strangers' made-up kids can make tokend ask a key server.
    pub key_refetch_interval_secs: u64,
}

impl Default for AssertionSettings {
    fn default() -> Self {
        Self {
            max_lifetime_secs: DEFAULT_ASSERTION_LIFETIME.as_secs(),
            key_refetch_interval_secs: DEFAULT_REFETCH_SECS,
        }
    }
}

/// `[assertions]`, checked.
#[derive(Debug, Clone, Copy)]
pub struct AssertionsConfig {
    pub max_lifetime: Duration,
    pub key_refetch_interval: Duration,
}

impl AssertionSettings {
    pub(super) fn resolve(&self) -> Result<AssertionsConfig, ConfigError> {
        ConfigError::unless(
            (1..=MAX_LIFETIME_SECS).contains(&self.max_lifetime_secs),
            "assertions",
            &format!("max_lifetime_secs must be between 1 and {MAX_LIFETIME_SECS}"),
        )?;
        ConfigError::unless(
            (1..=3600).contains(&self.key_refetch_interval_secs),
            "assertions",
            "key_refetch_interval_secs must be between 1 and 3600",
        )?;
        Ok(AssertionsConfig {
            max_lifetime: Duration::from_secs(self.max_lifetime_secs),
            key_refetch_interval: Duration::from_secs(self.key_refetch_interval_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_five_minutes_and_bounds_are_named() {
        let resolved = AssertionSettings::default().resolve().unwrap();
        assert_eq!(resolved.max_lifetime.as_secs(), 300);
        assert_eq!(resolved.key_refetch_interval.as_secs(), 30);
        for bad in [0, 3601] {
            let s = AssertionSettings {
                max_lifetime_secs: bad,
                ..AssertionSettings::default()
            };
            let err = s.resolve().unwrap_err().to_string();
            assert!(err.contains("assertions.max_lifetime_secs"), "{err}");
            let s = AssertionSettings {
                key_refetch_interval_secs: bad,
                ..AssertionSettings::default()
            };
            let err = s.resolve().unwrap_err().to_string();
            assert!(
                err.contains("assertions.key_refetch_interval_secs"),
                "{err}"
            );
        }
    }
}
