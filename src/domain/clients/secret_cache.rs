//! What `IssueToken` remembers of secrets it has verified, so a client that authenticated a
//! moment ago is not charged a second argon2id verification (about 11 ms of a core).
//!
//! - The key is HMAC-SHA256 under a random per-process key over the client id and the secret:
//!   it cannot be turned back into the secret, nor checked against a guess without the
//!   process's key. The secrets at rest stay argon2id hashes.
//! - Each entry remembers the registry's `Arc<Client>` it was verified against. Every change
//!   to a client, including a secret rotation, a disable, a deletion and a token revocation,
//!   replaces that `Arc` on every replica (through the change log), so a hit must be the
//!   same `Arc` as the registry's now: the entry is dropped by the change itself, with
//!   nothing to invalidate by hand.
//! - An entry never outlives the secret's own expiry (a rotation's grace period) nor the
//!   configured lifetime.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;

use super::client::Client;
use super::secret::ClientSecret;
use crate::domain::error::{Error, Result};

type SecretKey = [u8; 32];

#[derive(Clone)]
struct Entry {
    client: Arc<Client>,
    /// Unix µs after which the entry does not count.
    valid_until_us: i64,
}

/// Recently verified (client, secret) pairs.
pub struct SecretCache {
    hmac: hmac::Key,
    ttl_us: i64,
    /// `None` when turned off (capacity or lifetime 0).
    entries: Option<quick_cache::sync::Cache<SecretKey, Entry>>,
}

impl SecretCache {
    /// A cache of up to about `capacity` verified secrets, each remembered for at most `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Result<Self> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let hmac = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .map_err(|_| Error::Unexpected(anyhow::anyhow!("system random source failed")))?;
        let on = capacity > 0 && !ttl.is_zero();
        Ok(Self {
            hmac,
            ttl_us: i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX),
            entries: on.then(|| quick_cache::sync::Cache::new(capacity)),
        })
    }

    fn key(&self, client_id: &str, secret: &ClientSecret) -> SecretKey {
        let mut ctx = hmac::Context::with_key(&self.hmac);
        ctx.update(client_id.as_bytes());
        ctx.update(&[0]);
        ctx.update(secret.expose().as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(ctx.sign().as_ref());
        key
    }

    /// Whether `secret` of `client` was verified recently, against this very `client` value.
    pub fn check(&self, client: &Arc<Client>, secret: &ClientSecret, now_us: i64) -> bool {
        let Some(entries) = &self.entries else {
            return false;
        };
        entries
            .get(&self.key(client.id.as_str(), secret))
            .is_some_and(|e| Arc::ptr_eq(&e.client, client) && e.valid_until_us > now_us)
    }

    /// Remembers that `secret` verified for `client` (the registry's value from before the
    /// verification) at `now_us`; `secret_expire_us` is when the secret itself stops working.
    pub fn remember(
        &self,
        client: Arc<Client>,
        secret: &ClientSecret,
        now_us: i64,
        secret_expire_us: Option<i64>,
    ) {
        let Some(entries) = &self.entries else {
            return;
        };
        let mut valid_until_us = now_us.saturating_add(self.ttl_us);
        if let Some(expire) = secret_expire_us {
            valid_until_us = valid_until_us.min(expire);
        }
        let key = self.key(client.id.as_str(), secret);
        entries.insert(
            key,
            Entry {
                client,
                valid_until_us,
            },
        );
    }

    /// Drops entries that no longer count at `now_us`, or whose client has changed.
    pub fn forget_stale(&self, now_us: i64, current: impl Fn(&str) -> Option<Arc<Client>>) {
        if let Some(entries) = &self.entries {
            entries.retain(|_, e| {
                e.valid_until_us > now_us
                    && current(e.client.id.as_str()).is_some_and(|c| Arc::ptr_eq(&c, &e.client))
            });
        }
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| e.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clients::{ClientInput, ClientSpec};
    use crate::domain::ids::{ClientId, TenantId};

    fn client() -> Arc<Client> {
        let input = ClientInput {
            name: "svc".into(),
            ..ClientInput::default()
        };
        let now = time::OffsetDateTime::UNIX_EPOCH;
        Arc::new(Client {
            id: ClientId::generate(),
            tenant: TenantId::system(),
            spec: ClientSpec::from_input(&input).unwrap(),
            create_time: now,
            update_time: now,
            last_used_time: None,
            revision: 1,
            token_generation: 0,
        })
    }

    #[test]
    fn a_verified_secret_counts_for_the_same_client_value_only() {
        let cache = SecretCache::new(10, Duration::from_secs(60)).unwrap();
        let (c, secret, other) = (
            client(),
            ClientSecret::generate().unwrap(),
            ClientSecret::generate().unwrap(),
        );
        assert!(!cache.check(&c, &secret, 0));
        cache.remember(c.clone(), &secret, 0, None);
        assert!(cache.check(&c, &secret, 1));
        assert!(
            !cache.check(&c, &other, 1),
            "another secret is not vouched for"
        );
        // The client changed (rotation, disable...): the registry holds a new Arc.
        let changed = Arc::new((*c).clone());
        assert!(!cache.check(&changed, &secret, 1));
        cache.forget_stale(1, |_| Some(changed.clone()));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn entries_end_with_their_lifetime_or_the_secret_grace() {
        let cache = SecretCache::new(10, Duration::from_secs(60)).unwrap();
        let (c, secret) = (client(), ClientSecret::generate().unwrap());
        cache.remember(c.clone(), &secret, 0, None);
        assert!(cache.check(&c, &secret, 59_999_999));
        assert!(!cache.check(&c, &secret, 60_000_000));
        cache.remember(c.clone(), &secret, 0, Some(1_000));
        assert!(cache.check(&c, &secret, 999));
        assert!(
            !cache.check(&c, &secret, 1_000),
            "never past the secret's expiry"
        );
        let off = SecretCache::new(10, Duration::ZERO).unwrap();
        off.remember(c.clone(), &secret, 0, None);
        assert!(!off.check(&c, &secret, 0));
    }
}
