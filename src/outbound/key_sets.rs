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
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::domain::key_sets::{Freshness, KeySetError, KeySetSource, check_url};

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
    /// A file holding a bearer token sent with every fetch (a pod's projected service-account
    /// token, which the API server's discovery endpoints want); read at each fetch, as the
    /// kubelet rewrites it before it expires.
    bearer_token_file: Option<PathBuf>,
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
            bearer_token_file: None,
        })
    }

    /// Sends the token in `file` as `Authorization: Bearer` with every fetch.
    pub fn with_bearer_token_file(mut self, file: PathBuf) -> Self {
        self.bearer_token_file = Some(file);
        self
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
        let mut request = self.client.get(url).header(
            http::header::ACCEPT,
            "application/jwk-set+json, application/json",
        );
        if let Some(file) = &self.bearer_token_file {
            let token = tokio::fs::read_to_string(file)
                .await
                .map_err(|e| failed(format!("token_file {}: {e}", file.display())))?;
            request = request.bearer_auth(token.trim());
        }
        let mut response = request
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

/// A key set read from a file (a federated issuer's `jwks_file`: keys an operator copied, or a
/// ConfigMap the cluster keeps current). Read on first use and again, at most once per
/// `refetch_interval`, when a key is missing; the URL asked for is ignored (one file, one set).
pub struct FileKeySet {
    path: PathBuf,
    refetch_interval: Duration,
    copy: Mutex<Option<(Arc<str>, Instant)>>,
}

impl FileKeySet {
    pub fn new(path: PathBuf, refetch_interval: Duration) -> Self {
        Self {
            path,
            refetch_interval,
            copy: Mutex::new(None),
        }
    }
}

#[async_trait]
impl KeySetSource for FileKeySet {
    async fn key_set(&self, _url: &str, freshness: Freshness) -> Result<Arc<str>, KeySetError> {
        let now = Instant::now();
        let held = self.copy.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some((text, read)) = &held {
            let fresh_enough = match freshness {
                Freshness::Cached => true,
                Freshness::Refetch => now < *read + self.refetch_interval,
            };
            if fresh_enough {
                return Ok(text.clone());
            }
        }
        match tokio::fs::read_to_string(&self.path).await {
            Ok(text) => {
                let text: Arc<str> = Arc::from(text);
                let same = held.as_ref().is_some_and(|(old, _)| **old == *text);
                let text = if same {
                    held.map(|(old, _)| old).unwrap_or(text)
                } else {
                    text
                };
                *self.copy.lock().unwrap_or_else(|e| e.into_inner()) = Some((text.clone(), now));
                Ok(text)
            }
            Err(err) => {
                let err = KeySetError::Fetch(format!("{}: {err}", self.path.display()));
                match held {
                    Some((text, _)) => {
                        tracing::warn!(error = %err, "key file unreadable; keeping the last copy");
                        Ok(text)
                    }
                    None => Err(err),
                }
            }
        }
    }
}
