//! `[secrets]`: what verifying a client secret may cost, how long a verified one is
//! remembered, and when failures lock a client or an address.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::domain::{CacheConfig, HashParams, LockoutConfig};

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

/// `[secrets]`, checked, in the domain's types.
#[derive(Debug, Clone, Copy)]
pub struct SecretsConfig {
    pub hash_params: HashParams,
    /// How many argon2 computations may run at once (0 already resolved from the CPUs).
    pub hash_concurrency: usize,
    /// Longest a verified secret is remembered (zero: not at all).
    pub verified_cache_ttl: Duration,
    pub verified_cache_entries: usize,
    pub lockout: LockoutConfig,
}

impl SecretsConfig {
    /// The replica's caches: these secrets beside `token_entries` verified tokens.
    pub fn caches(&self, token_entries: usize) -> CacheConfig {
        CacheConfig {
            token_entries,
            secret_entries: self.verified_cache_entries,
            secret_ttl: self.verified_cache_ttl,
        }
    }
}

impl SecretSettings {
    pub(super) fn resolve(&self) -> Result<SecretsConfig, ConfigError> {
        let hash_params = HashParams {
            memory_kib: self.memory_kib,
            iterations: self.iterations,
            parallelism: self.parallelism,
        };
        hash_params
            .validate()
            .map_err(|e| ConfigError(format!("secrets: {e}")))?;
        self.check_bounds()?;
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        Ok(SecretsConfig {
            hash_params,
            hash_concurrency: match self.max_concurrent_hashes {
                0 => cpus.saturating_sub(1).max(1),
                n => n,
            },
            verified_cache_ttl: Duration::from_secs(self.verified_cache_secs),
            verified_cache_entries: self.verified_cache_entries,
            lockout: LockoutConfig {
                max_failures: self.max_failures,
                window: Duration::from_secs(self.failure_window_secs),
                delay: Duration::from_millis(self.lockout_delay_ms),
            },
        })
    }

    fn check_bounds(&self) -> Result<(), ConfigError> {
        if self.verified_cache_secs > 3600 {
            return Err(ConfigError(
                "secrets.verified_cache_secs must be at most 3600".into(),
            ));
        }
        if !(1..=3600).contains(&self.failure_window_secs) {
            return Err(ConfigError(
                "secrets.failure_window_secs must be between 1 and 3600".into(),
            ));
        }
        if self.lockout_delay_ms > 10_000 {
            return Err(ConfigError(
                "secrets.lockout_delay_ms must be at most 10000".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_concurrency_leaves_a_core_free() {
        let config = SecretSettings::default().resolve().unwrap();
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        assert_eq!(config.hash_concurrency, cpus.saturating_sub(1).max(1));
        let s = SecretSettings {
            max_concurrent_hashes: 3,
            ..SecretSettings::default()
        };
        assert_eq!(s.resolve().unwrap().hash_concurrency, 3);
    }
}
