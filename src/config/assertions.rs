//! `[assertions]`: how long a client assertion (`private_key_jwt`, RFC 7523) may live.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::domain::DEFAULT_ASSERTION_LIFETIME;

/// Longest `max_lifetime_secs` accepted: an assertion is a bearer credential until it is used,
/// and its `jti` is stored until it expires.
const MAX_LIFETIME_SECS: u64 = 3600;

/// `[assertions]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssertionSettings {
    /// Longest time from an assertion's `iat` (or now, without one) to its `exp`, seconds
    /// (1-3600).
    pub max_lifetime_secs: u64,
}

impl Default for AssertionSettings {
    fn default() -> Self {
        Self {
            max_lifetime_secs: DEFAULT_ASSERTION_LIFETIME.as_secs(),
        }
    }
}

impl AssertionSettings {
    /// The longest lifetime of a client assertion, checked.
    pub(super) fn resolve(&self) -> Result<Duration, ConfigError> {
        ConfigError::unless(
            (1..=MAX_LIFETIME_SECS).contains(&self.max_lifetime_secs),
            "assertions",
            &format!("max_lifetime_secs must be between 1 and {MAX_LIFETIME_SECS}"),
        )?;
        Ok(Duration::from_secs(self.max_lifetime_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_five_minutes_and_bounds_are_named() {
        assert_eq!(
            AssertionSettings::default().resolve().unwrap().as_secs(),
            300
        );
        for bad in [0, 3601] {
            let s = AssertionSettings {
                max_lifetime_secs: bad,
            };
            let err = s.resolve().unwrap_err().to_string();
            assert!(err.contains("assertions.max_lifetime_secs"), "{err}");
        }
    }
}
