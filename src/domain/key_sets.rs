//! Public key sets tokend reads from elsewhere: a client's `jwks_uri` (RFC 7523 assertions)
//! and a federated issuer's JWKS (issue 21). The domain asks for a set by its URL and parses
//! and checks it itself; fetching, caching and the limits on both are the outbound side's
//! (`crate::outbound`), behind this trait, so the domain sees no HTTP client.

use std::sync::Arc;

use async_trait::async_trait;

/// How fresh a key set must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// A copy within its cache lifetime will do.
    Cached,
    /// The caller found no key it needs (an unknown `kid`: the owner may have rotated): fetch
    /// again, unless that was done moments ago (the refetch is rate-limited, so unknown kids
    /// cannot make tokend hammer someone's server).
    Refetch,
}

/// Why a key set could not be had. Never a reason to accept what it would have verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    /// The URL is not one tokend fetches from: not `https`, or plain `http` to a host that is
    /// not loopback.
    #[error("key set URL refused: {0}")]
    Refused(String),
    /// The fetch failed: unreachable, too slow, not 200, too large.
    #[error("key set fetch failed: {0}")]
    Fetch(String),
}

/// Where key sets come from.
#[async_trait]
pub trait KeySetSource: Send + Sync {
    /// The JWK Set at `url`, as the JSON text served.
    async fn key_set(&self, url: &str, freshness: Freshness) -> Result<Arc<str>, KeySetError>;
}
