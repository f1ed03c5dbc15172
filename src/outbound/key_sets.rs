//! Key sets (JWKS) fetched over HTTPS and cached, for [`KeySetSource`].
//!
//! - Only `https` URLs, or plain `http` to a loopback host (tests, a sidecar); no redirects
//!   (a redirect could point anywhere); a timeout on the whole exchange; a size cap on the body.
//! - A set is cached for its `Cache-Control: max-age`, bounded to [`KeySetLimits::min_ttl`] ..
//!   [`KeySetLimits::max_ttl`] (`default_ttl` without one; `no-store`/`no-cache` count as the
//!   minimum), so a client's key server is asked at most once a minute however busy tokend is.
//! - [`Freshness::Refetch`] (an unknown `kid`) fetches again at most once per
//!   `refetch_interval` per URL: a client can rotate its key without telling tokend, and an
//!   attacker's unknown kids cannot turn tokend into a flood.
//! - While fetches fail, the last copy keeps serving for `max_stale` past its lifetime (the
//!   keys in it are still the owner's); after that, or with no copy, the caller gets the error
//!   and refuses what it was verifying.
//! - One fetch per URL at a time: callers that find it missing wait for that one fetch.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::domain::key_sets::{Freshness, KeySetError, KeySetSource};

/// Bounds on fetching and caching key sets.
#[derive(Debug, Clone)]
pub struct KeySetLimits {
    /// The whole request: connect, TLS, headers and body.
    pub timeout: Duration,
    /// Largest body accepted.
    pub max_bytes: usize,
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    /// Lifetime of a set served without `max-age`.
    pub default_ttl: Duration,
    /// Least time between two fetches of one URL asked for by [`Freshness::Refetch`].
    pub refetch_interval: Duration,
    /// How long past its lifetime a copy still serves while fetches fail.
    pub max_stale: Duration,
    /// Most URLs remembered; past it the copy fetched longest ago goes.
    pub max_entries: usize,
}

impl Default for KeySetLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_bytes: 64 * 1024,
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            default_ttl: Duration::from_secs(300),
            refetch_interval: Duration::from_secs(30),
            max_stale: Duration::from_secs(3600),
            max_entries: 10_000,
        }
    }
}

struct Entry {
    body: Arc<str>,
    fetched: Instant,
    fresh_until: Instant,
}

/// Key sets over HTTP(S), cached per URL.
pub struct HttpKeySets {
    client: reqwest::Client,
    limits: KeySetLimits,
    cache: Mutex<HashMap<String, Entry>>,
    /// One lock per URL being fetched, so concurrent callers share one fetch.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl HttpKeySets {
    /// A fetcher that trusts the public web's CAs (Mozilla's list, built in) and `extra_roots`
    /// (a private CA, such as a cluster's).
    pub fn new(
        limits: KeySetLimits,
        extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    ) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for root in extra_roots {
            roots.add(root)?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(limits.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tokend/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            limits,
            cache: Mutex::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
        })
    }

    /// The cached copy, if it answers a call of this freshness now.
    fn cached(&self, url: &str, freshness: Freshness, now: Instant) -> Option<Arc<str>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let entry = cache.get(url)?;
        let usable = match freshness {
            Freshness::Cached => now < entry.fresh_until,
            Freshness::Refetch => now < entry.fetched + self.limits.refetch_interval,
        };
        usable.then(|| entry.body.clone())
    }

    /// The last copy, however old, if still within `max_stale` of its lifetime.
    fn stale(&self, url: &str, now: Instant) -> Option<Arc<str>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let entry = cache.get(url)?;
        (now < entry.fresh_until + self.limits.max_stale).then(|| entry.body.clone())
    }

    fn remember(&self, url: &str, body: Arc<str>, ttl: Duration) {
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= self.limits.max_entries && !cache.contains_key(url) {
            let oldest = cache
                .iter()
                .min_by_key(|(_, e)| e.fetched)
                .map(|(u, _)| u.clone());
            if let Some(oldest) = oldest {
                cache.remove(&oldest);
            }
        }
        let entry = Entry {
            body,
            fetched: now,
            fresh_until: now + ttl,
        };
        cache.insert(url.to_owned(), entry);
    }

    fn fetch_lock(&self, url: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut fetching = self.fetching.lock().unwrap_or_else(|e| e.into_inner());
        fetching.retain(|_, lock| Arc::strong_count(lock) > 1);
        fetching.entry(url.to_owned()).or_default().clone()
    }

    /// One GET: the body (at most `max_bytes`) and how long it may be cached.
    async fn fetch(&self, url: reqwest::Url) -> Result<(Arc<str>, Duration), KeySetError> {
        let failed = |what: String| KeySetError::Fetch(what);
        let mut response = self
            .client
            .get(url)
            .header(
                http::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(|e| failed(format!("{:#}", anyhow::Error::new(e))))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(failed(format!("answered {}", response.status())));
        }
        let too_large = || failed(format!("larger than {} bytes", self.limits.max_bytes));
        if response
            .content_length()
            .is_some_and(|n| n > self.limits.max_bytes as u64)
        {
            return Err(too_large());
        }
        let ttl = ttl_of(response.headers(), &self.limits);
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| failed(format!("{:#}", anyhow::Error::new(e))))?
        {
            if body.len() + chunk.len() > self.limits.max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let text =
            String::from_utf8(body).map_err(|_| failed("a body that is not UTF-8".into()))?;
        Ok((Arc::from(text), ttl))
    }
}

#[async_trait]
impl KeySetSource for HttpKeySets {
    async fn key_set(&self, url: &str, freshness: Freshness) -> Result<Arc<str>, KeySetError> {
        let parsed = check_url(url)?;
        if let Some(body) = self.cached(url, freshness, Instant::now()) {
            return Ok(body);
        }
        let lock = self.fetch_lock(url);
        let _one_fetch = lock.lock().await;
        // Another caller may have fetched while this one waited.
        if let Some(body) = self.cached(url, Freshness::Refetch, Instant::now()) {
            return Ok(body);
        }
        match self.fetch(parsed).await {
            Ok((body, ttl)) => {
                self.remember(url, body.clone(), ttl);
                Ok(body)
            }
            Err(err) => match self.stale(url, Instant::now()) {
                Some(body) => {
                    tracing::warn!(%url, error = %err, "key set fetch failed; serving the last copy");
                    Ok(body)
                }
                None => {
                    tracing::warn!(%url, error = %err, "key set fetch failed");
                    Err(err)
                }
            },
        }
    }
}

/// `https`, or `http` to a loopback host; nothing else.
fn check_url(raw: &str) -> Result<reqwest::Url, KeySetError> {
    let refused = |why: &str| KeySetError::Refused(format!("{why}: {raw:?}"));
    let url = reqwest::Url::parse(raw).map_err(|_| refused("not a URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused("credentials in the URL"));
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

/// How long a response may be cached: its `max-age`, within the limits.
fn ttl_of(headers: &http::HeaderMap, limits: &KeySetLimits) -> Duration {
    let mut max_age = None;
    for value in headers.get_all(http::header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',').map(str::trim) {
            let lower = directive.to_ascii_lowercase();
            if lower == "no-store" || lower == "no-cache" {
                return limits.min_ttl;
            }
            if let Some(secs) = lower.strip_prefix("max-age=") {
                max_age = secs
                    .trim_matches('"')
                    .parse::<u64>()
                    .ok()
                    .map(Duration::from_secs);
            }
        }
    }
    max_age
        .unwrap_or(limits.default_ttl)
        .clamp(limits.min_ttl, limits.max_ttl.max(limits.min_ttl))
}

#[cfg(test)]
#[path = "key_sets_tests.rs"]
mod tests;
