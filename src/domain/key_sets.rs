//! Public key sets tokend reads from elsewhere: a client's `jwks_uri` (RFC 7523 assertions)
//! and a federated issuer's JWKS (issue 21). The domain asks for a set by its URL and parses
//! and checks it itself; fetching, caching and the limits on both are the outbound side's
//! (`crate::outbound`), behind [`KeySetSource`], so the domain sees no HTTP client.
//!
//! [`KeySets`] sits between: it keeps each fetched set parsed (a set is parsed once per new
//! text, not once per assertion) and finds the key an assertion names, asking for one refetch
//! when the copy it has does not hold that `kid` (the owner may have rotated its key).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::domain::clients::{ClientJwks, ClientKey};

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
    /// What was fetched is not a usable document (not JSON, no usable key, a discovery
    /// document for another issuer).
    #[error("key set unusable: {0}")]
    Unusable(String),
}

/// Where key sets come from.
#[async_trait]
pub trait KeySetSource: Send + Sync {
    /// The JSON document at `url` (a JWK Set, or an OpenID discovery document), as served.
    async fn key_set(&self, url: &str, freshness: Freshness) -> Result<Arc<str>, KeySetError>;
}

/// Longest URL accepted for a key set.
pub const MAX_URL_LEN: usize = 2048;

/// A URL tokend fetches documents from: `https`, or plain `http` to a loopback host (a test
/// server, a local sidecar); no credentials in it, no fragment.
pub fn check_url(raw: &str) -> Result<url::Url, KeySetError> {
    let refused = |why: &str| KeySetError::Refused(format!("{why}: {raw:?}"));
    if raw.len() > MAX_URL_LEN {
        return Err(refused("longer than 2048 bytes"));
    }
    let url = url::Url::parse(raw).map_err(|_| refused("not a URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused("credentials in the URL"));
    }
    if url.fragment().is_some() {
        return Err(refused("a fragment in the URL"));
    }
    let host = url.host_str().ok_or_else(|| refused("no host"))?;
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(refused("plain http only to a loopback host; use https")),
        _ => Err(refused("not an http(s) URL")),
    }
}

/// Most parsed sets kept (each is also in the source's cache); past it the set is parsed
/// again on its next use.
const MAX_PARSED: usize = 10_000;

/// A set as fetched (to tell when it changes) and as parsed.
type Parsed = (Arc<str>, Arc<ClientJwks>);

/// Fetched key sets, parsed once per text.
pub struct KeySets {
    source: Arc<dyn KeySetSource>,
    parsed: Mutex<HashMap<String, Parsed>>,
}

impl KeySets {
    pub fn new(source: Arc<dyn KeySetSource>) -> Self {
        Self {
            source,
            parsed: Mutex::new(HashMap::new()),
        }
    }

    /// The source's document at `url`, as served.
    pub async fn document(&self, url: &str, freshness: Freshness) -> Result<Arc<str>, KeySetError> {
        self.source.key_set(url, freshness).await
    }

    /// The key `kid` names in the set at `url` (without a `kid`, the set's only key): from the
    /// copy at hand, or, when that does not hold it, from one refetch.
    pub async fn key(&self, url: &str, kid: Option<&str>) -> Result<ClientKey, KeySetError> {
        if let Some(key) = self.set(url, Freshness::Cached).await?.select(kid) {
            return Ok(key.clone());
        }
        self.set(url, Freshness::Refetch)
            .await?
            .select(kid)
            .cloned()
            .ok_or_else(|| KeySetError::Unusable(format!("no key {kid:?} in the set")))
    }

    async fn set(&self, url: &str, freshness: Freshness) -> Result<Arc<ClientJwks>, KeySetError> {
        let text = self.source.key_set(url, freshness).await?;
        {
            let parsed = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((known, jwks)) = parsed.get(url)
                && Arc::ptr_eq(known, &text)
            {
                return Ok(jwks.clone());
            }
        }
        let jwks = Arc::new(
            ClientJwks::parse_published(&text).map_err(|e| KeySetError::Unusable(e.to_string()))?,
        );
        let mut parsed = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        if parsed.len() >= MAX_PARSED {
            parsed.clear();
        }
        parsed.insert(url.to_owned(), (text, jwks.clone()));
        Ok(jwks)
    }
}

/// A source that fetches nothing: for tools that never verify assertions against fetched
/// keys (the offline CLI, benches). Every request is refused.
pub struct NoKeySets;

#[async_trait]
impl KeySetSource for NoKeySets {
    async fn key_set(&self, url: &str, _: Freshness) -> Result<Arc<str>, KeySetError> {
        Err(KeySetError::Refused(format!(
            "this process fetches no key sets: {url:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        for good in [
            "https://keys.example/jwks.json",
            "http://127.0.0.1:8080/jwks",
            "http://[::1]/jwks",
            "http://localhost/jwks",
        ] {
            check_url(good).unwrap();
        }
        for bad in [
            "http://keys.example/jwks",
            "ftp://keys.example/jwks",
            "https://user:pw@keys.example/jwks",
            "https://keys.example/jwks#frag",
            "not a url",
            "file:///etc/passwd",
        ] {
            assert!(
                matches!(check_url(bad), Err(KeySetError::Refused(_))),
                "{bad}"
            );
        }
    }
}
