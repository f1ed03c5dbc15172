//! `[tokens]`: the issuer, the clock skew tolerated, the refresh retry window and how often
//! last-use times are written.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

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

/// `[tokens]`, checked.
#[derive(Debug, Clone)]
pub struct TokensConfig {
    pub issuer: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// How long a spent refresh token still gets the same successor; zero: never.
    pub refresh_retry_window: Duration,
    /// How often batched last-use times are written.
    pub last_used_flush: Duration,
}

impl TokenSettings {
    pub(super) fn resolve(&self) -> Result<TokensConfig, ConfigError> {
        if self.issuer.trim().is_empty() {
            return Err(ConfigError("tokens.issuer must not be empty".into()));
        }
        if self.refresh_retry_window_secs > 60 {
            return Err(ConfigError(
                "tokens.refresh_retry_window_secs must be at most 60: it is how long a stolen, \
                 already used refresh token still works"
                    .into(),
            ));
        }
        if !(1..=3600).contains(&self.last_used_flush_secs) {
            return Err(ConfigError(
                "tokens.last_used_flush_secs must be between 1 and 3600".into(),
            ));
        }
        Ok(TokensConfig {
            issuer: self.issuer.clone(),
            leeway: Duration::from_secs(self.leeway_secs),
            refresh_retry_window: Duration::from_secs(self.refresh_retry_window_secs),
            last_used_flush: Duration::from_secs(self.last_used_flush_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_named() {
        let err = |change: fn(&mut TokenSettings)| {
            let mut s = TokenSettings::default();
            change(&mut s);
            s.resolve().unwrap_err().to_string()
        };
        assert!(err(|s| s.issuer = " ".into()).contains("tokens.issuer"));
        assert!(err(|s| s.refresh_retry_window_secs = 61).contains("at most 60"));
        assert!(err(|s| s.last_used_flush_secs = 0).contains("last_used_flush_secs"));
    }
}
