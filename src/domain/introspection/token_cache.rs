//! What `Introspect` remembers of tokens it has verified: the work that depends on the token
//! alone (signature check and claim parsing for a JWT, the database read for an opaque
//! token). Keyed by the SHA-256 of the token, so the cache holds no bearer token and a forged
//! token cannot collide with a cached one.
//!
//! What can change while a token lives (its client disabled, deleted or revoked, the token or
//! its family on the deny list, its signing key retired) is NOT cached: every answer still checks the registry, so a
//! revocation counts on the next call, on every replica, without invalidating anything here.
//! Entries go when their token expires (lookups ignore them, the purge drops them) or when the
//! cache is full.

use std::sync::Arc;

use crate::domain::scope::ScopeSet;
use crate::domain::token_endpoint::claims::AccessClaims;

/// A token whose own content checked out, with what every answer needs parsed once.
#[derive(Debug)]
pub struct VerifiedToken {
    pub claims: AccessClaims,
    pub scopes: ScopeSet,
    /// Unix seconds after which the entry is useless: `exp` plus the leeway.
    pub(in crate::domain) dead_after: i64,
    /// The key that verified a JWT's signature (`None` for an opaque token): retiring the key
    /// makes its tokens inactive, cached or not.
    pub(in crate::domain) kid: Option<String>,
}

/// Cache key: SHA-256 of the presented token.
pub type TokenKey = [u8; 32];

/// The key for `token`.
pub fn token_key(token: &str) -> TokenKey {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// A bounded map from token key to verified token.
pub struct TokenCache {
    /// `None` when the cache is turned off (capacity 0).
    entries: Option<quick_cache::sync::Cache<TokenKey, Arc<VerifiedToken>>>,
}

impl TokenCache {
    /// A cache holding up to about `capacity` tokens; 0 turns it off.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: (capacity > 0).then(|| quick_cache::sync::Cache::new(capacity)),
        }
    }

    /// The verified token under `key`, unless it is dead at `now` (Unix seconds).
    pub fn get(&self, key: &TokenKey, now: i64) -> Option<Arc<VerifiedToken>> {
        let hit = self.entries.as_ref()?.get(key)?;
        (hit.dead_after > now).then_some(hit)
    }

    /// Remembers a verified token.
    pub fn insert(&self, key: TokenKey, token: Arc<VerifiedToken>) {
        if let Some(entries) = &self.entries {
            entries.insert(key, token);
        }
    }

    /// Drops every entry dead at `now`.
    pub fn forget_expired(&self, now: i64) {
        if let Some(entries) = &self.entries {
            entries.retain(|_, token| token.dead_after > now);
        }
    }

    /// Number of tokens held.
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| e.len())
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(dead_after: i64) -> Arc<VerifiedToken> {
        Arc::new(VerifiedToken {
            claims: AccessClaims {
                iss: "urn:t".into(),
                sub: "c".into(),
                aud: vec![],
                exp: dead_after,
                iat: 0,
                nbf: 0,
                jti: "j".into(),
                client_id: "c".into(),
                scope: String::new(),
                tenant: "t".into(),
                roles: vec![],
                generation: 0,
                gid: None,
                act: None,
                src: Vec::new(),
                cnf: None,
            },
            scopes: ScopeSet::default(),
            dead_after,
            kid: None,
        })
    }

    #[test]
    fn hits_until_the_token_dies() {
        let cache = TokenCache::new(10);
        let key = token_key("a.b.c");
        assert_ne!(key, token_key("a.b.d"));
        cache.insert(key, token(100));
        assert!(cache.get(&key, 99).is_some());
        assert!(cache.get(&key, 100).is_none(), "dead at its deadline");
        assert!(cache.get(&token_key("a.b.d"), 0).is_none());
        cache.forget_expired(100);
        assert!(cache.is_empty());
    }

    #[test]
    fn capacity_bounds_it_and_zero_turns_it_off() {
        let cache = TokenCache::new(100);
        for i in 0..1_000 {
            cache.insert(token_key(&i.to_string()), token(i64::MAX));
        }
        assert!(cache.len() <= 200, "held {}", cache.len());
        let off = TokenCache::new(0);
        off.insert(token_key("x"), token(i64::MAX));
        assert!(off.get(&token_key("x"), 0).is_none());
    }
}
