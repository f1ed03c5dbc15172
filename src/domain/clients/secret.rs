//! Client secrets: generated with 256 bits of entropy and a recognisable prefix (so secret
//! scanners can find leaked ones), kept only as argon2id hashes, and checked on a bounded
//! blocking pool so hashing never stalls the async runtime.

use std::fmt;
use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prometheus::{Histogram, IntGauge};
use secrecy::{ExposeSecret, SecretString};

use crate::domain::error::{Error, Result};
use crate::domain::stats::Stats;

/// Every client secret starts with this, so scanners can recognise a leaked one.
pub const SECRET_PREFIX: &str = "tkd_cs_";
const SECRET_BYTES: usize = 32;
/// Length of a well-formed secret: the prefix plus 43 base64url characters.
pub const SECRET_LEN: usize = SECRET_PREFIX.len() + 43;

/// A client secret in the clear. Exists only between generation and the response that shows
/// it, or between a request and its verification. `Debug` prints a redaction.
pub struct ClientSecret(SecretString);

impl ClientSecret {
    /// A new random secret.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; SECRET_BYTES];
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| Error::Unexpected(anyhow::anyhow!("system random source failed")))?;
        let text = format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        Ok(Self(SecretString::from(text)))
    }

    /// Wraps a secret presented by a caller. Returns `None` when it cannot be a tokend secret
    /// (wrong prefix or length): such input needs no hash check to be refused.
    pub fn from_presented(raw: &str) -> Option<Self> {
        (raw.len() == SECRET_LEN && raw.starts_with(SECRET_PREFIX))
            .then(|| Self(SecretString::from(raw.to_owned())))
    }

    /// A non-secret lookup key for this secret's stored hash: the first 8 bytes of its SHA-256,
    /// hex. It lets verification fetch the one hash to check, so every attempt costs exactly one
    /// argon2 verification however many secrets a client has. (Learning it reveals nothing: the
    /// secret has 256 bits of entropy.)
    pub fn selector(&self) -> String {
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.expose().as_bytes());
        digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The secret itself, for the one response that returns it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for HashParams {
    /// The argon2 crate's defaults, which are OWASP's minimum for argon2id (19 MiB, 2 passes,
    /// 1 lane): about 11 ms of CPU per hash on a current server core.
    fn default() -> Self {
        Self {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
        }
    }
}

impl HashParams {
    fn argon2(&self) -> std::result::Result<Argon2<'static>, String> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| format!("invalid argon2 parameters: {e}"))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Checks the parameters are ones argon2 accepts.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.argon2().map(|_| ())
    }
}

/// Hashes and verifies secrets on a few dedicated threads (`concurrency` of them), so a burst
/// of logins (or of wrong secrets) queues instead of taking every core from `Introspect`.
///
/// Dedicated threads rather than tokio's blocking pool: each argon2 computation allocates its
/// memory cost (19 MiB by default), and the allocator keeps that memory with the thread's
/// arena. On a few long-lived threads it is reused; on the blocking pool's changing threads it
/// piled up (about 20 MiB more resident per thread that ever hashed).
#[derive(Clone)]
pub struct SecretHasher {
    argon2: Argon2<'static>,
    jobs: std::sync::mpsc::Sender<Job>,
    /// Verified against when a client has no live secret, so that unknown clients cost the
    /// same time as wrong secrets.
    dummy_hash: Arc<str>,
    /// Jobs waiting for a thread, and how long they waited.
    queue: (IntGauge, Histogram),
}

/// A job in the queue: counted while it waits, its wait observed when a thread takes it (or
/// forgotten if it is dropped unrun).
struct Queued {
    queue: (IntGauge, Histogram),
    since: std::time::Instant,
}

impl Queued {
    fn enter(queue: &(IntGauge, Histogram)) -> Self {
        queue.0.inc();
        Self {
            queue: queue.clone(),
            since: std::time::Instant::now(),
        }
    }

    /// A hashing thread took the job.
    fn leave(self) {
        self.queue.1.observe(self.since.elapsed().as_secs_f64());
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.queue.0.dec();
    }
}

type Job = Box<dyn FnOnce() + Send>;

impl fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretHasher").finish_non_exhaustive()
    }
}

thread_local! {
    /// The hashing thread's argon2 memory, kept between verifications: allocating and freeing
    /// 19 MiB per call leaves the allocator's heap fragmented and resident.
    static MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether `password` matches the argon2 PHC string `phc`, computed in this thread's reused
/// memory. The comparison is constant-time (`Output`'s equality).
fn verify_in_place(password: &[u8], phc: &str) -> bool {
    let compute = || -> Option<bool> {
        let parsed = argon2::PasswordHash::new(phc).ok()?;
        let params = Params::try_from(&parsed).ok()?;
        let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).ok()?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::default(),
        };
        let (salt, expected) = (parsed.salt?, parsed.hash?);
        let mut out = vec![0u8; expected.len()];
        let argon2 = Argon2::new(algorithm, version, params.clone());
        MEMORY.with_borrow_mut(|memory| {
            memory.resize(params.block_count(), argon2::Block::default());
            argon2
                .hash_password_into_with_memory(password, &salt, &mut out, &mut memory[..])
                .ok()
        })?;
        Some(argon2::password_hash::phc::Output::new(&out).ok()? == expected)
    };
    compute().unwrap_or(false)
}

/// The PHC string of an argon2id hash of `password` with `salt` (computed in place when
/// `password` is given; `None` gives a random output: a well-formed hash nothing matches).
fn phc(argon2: &Argon2<'_>, params: &Params, password: Option<&[u8]>) -> Result<String> {
    use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
    let fail = |e: &dyn std::fmt::Display| Error::Unexpected(anyhow::anyhow!("argon2: {e}"));
    let mut salt = [0u8; 16];
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let random = |buf: &mut [u8]| {
        aws_lc_rs::rand::fill(buf)
            .map_err(|_| Error::Unexpected(anyhow::anyhow!("system random source failed")))
    };
    random(&mut salt)?;
    match password {
        Some(pw) => MEMORY.with_borrow_mut(|memory| {
            memory.resize(params.block_count(), argon2::Block::default());
            argon2
                .hash_password_into_with_memory(pw, &salt, &mut out, &mut memory[..])
                .map_err(|e| fail(&e))
        })?,
        None => random(&mut out)?,
    }
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| fail(&e))?,
        salt: Some(Salt::new(&salt).map_err(|e| fail(&e))?),
        hash: Some(Output::new(&out).map_err(|e| fail(&e))?),
    };
    Ok(hash.to_string())
}

/// Starts `n` hashing threads taking jobs from one queue; they end when every sender is gone.
fn start_workers(n: usize) -> Result<std::sync::mpsc::Sender<Job>> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    for i in 0..n.max(1) {
        let rx = rx.clone();
        std::thread::Builder::new()
            .name(format!("tokend-argon2-{i}"))
            .spawn(move || {
                loop {
                    // The lock is held only while waiting for the next job.
                    let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    match job {
                        // A panicking job fails its own call only; the thread lives on.
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                        Err(_) => return,
                    }
                }
            })
            .map_err(|e| {
                Error::Unexpected(anyhow::anyhow!("cannot start a hashing thread: {e}"))
            })?;
    }
    Ok(tx)
}

impl SecretHasher {
    /// A hasher with the given cost, running at most `concurrency` hashes at once.
    pub fn new(params: HashParams, concurrency: usize) -> Result<Self> {
        let argon2 = params
            .argon2()
            .map_err(|e| Error::Unexpected(anyhow::anyhow!(e)))?;
        // Random bytes in a well-formed hash of the same cost: verifying against it costs one
        // argon2 computation, and computing it costs none.
        let dummy = phc(&argon2, argon2.params(), None)?;
        let unregistered = Stats::new();
        Ok(Self {
            argon2,
            jobs: start_workers(concurrency)?,
            dummy_hash: dummy.into(),
            queue: (unregistered.argon2_queued, unregistered.argon2_wait),
        })
    }

    /// Counts the queue in `stats` (registered for Prometheus) instead of in instruments of
    /// its own.
    pub fn with_stats(mut self, stats: &Stats) -> Self {
        self.queue = (stats.argon2_queued.clone(), stats.argon2_wait.clone());
        self
    }

    /// The argon2id PHC string for `secret`.
    pub async fn hash(&self, secret: &ClientSecret) -> Result<String> {
        let argon2 = self.argon2.clone();
        let secret = SecretString::from(secret.expose().to_owned());
        self.run_blocking(move || {
            phc(
                &argon2,
                argon2.params(),
                Some(secret.expose_secret().as_bytes()),
            )
        })
        .await
    }

    /// Whether `secret` matches `hash`: exactly one argon2 verification either way. With no
    /// hash (unknown client, unknown secret) it verifies against a dummy hash of the same cost,
    /// so absence is not visible in timing.
    pub async fn verify(&self, secret: &ClientSecret, hash: Option<String>) -> Result<bool> {
        let secret = SecretString::from(secret.expose().to_owned());
        let dummy = self.dummy_hash.clone();
        self.run_blocking(move || {
            let pw = secret.expose_secret().as_bytes();
            Ok(match hash {
                Some(hash) => verify_in_place(pw, &hash),
                None => {
                    let _ = verify_in_place(pw, &dummy);
                    false
                }
            })
        })
        .await
    }

    /// Like [`SecretHasher::verify`], unless `skip` says otherwise when the job reaches a
    /// hashing thread: then no argon2 runs and the answer is `None`. Calls queue for the
    /// threads; a condition that arose while they waited (a lockout) is honoured this way.
    pub async fn verify_unless(
        &self,
        secret: &ClientSecret,
        hash: Option<String>,
        skip: impl FnOnce() -> bool + Send + 'static,
    ) -> Result<Option<bool>> {
        let secret = SecretString::from(secret.expose().to_owned());
        let dummy = self.dummy_hash.clone();
        self.run_blocking(move || {
            if skip() {
                return Ok(None);
            }
            let pw = secret.expose_secret().as_bytes();
            Ok(Some(match hash {
                Some(hash) => verify_in_place(pw, &hash),
                None => {
                    let _ = verify_in_place(pw, &dummy);
                    false
                }
            }))
        })
        .await
    }

    async fn run_blocking<T, F>(&self, work: F) -> Result<T>
    where
        F: FnOnce() -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let span = tracing::info_span!(parent: tracing::Span::current(), "argon2");
        let queued = Queued::enter(&self.queue);
        self.jobs
            .send(Box::new(move || {
                queued.leave();
                let _ = done.send(span.in_scope(work));
            }))
            .map_err(|_| Error::Unavailable("shutting down".into()))?;
        result
            .await
            .map_err(|_| Error::Unexpected(anyhow::anyhow!("hashing thread failed")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> SecretHasher {
        let params = HashParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        SecretHasher::new(params, 2).unwrap()
    }

    #[test]
    fn secrets_are_prefixed_random_and_redacted() {
        let a = ClientSecret::generate().unwrap();
        let b = ClientSecret::generate().unwrap();
        assert!(a.expose().starts_with(SECRET_PREFIX));
        assert_eq!(a.expose().len(), SECRET_LEN);
        assert_ne!(a.expose(), b.expose());
        assert!(!format!("{a:?}").contains(&a.expose()[SECRET_PREFIX.len()..]));
    }

    #[test]
    fn presented_secrets_of_the_wrong_shape_are_refused_without_hashing() {
        assert!(ClientSecret::from_presented("hunter2").is_none());
        let good = ClientSecret::generate().unwrap();
        assert!(ClientSecret::from_presented(good.expose()).is_some());
        let wrong_prefix = good.expose().replacen(SECRET_PREFIX, "xxx_cs_", 1);
        assert!(ClientSecret::from_presented(&wrong_prefix).is_none());
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = cheap();
        let secret = ClientSecret::generate().unwrap();
        let other = ClientSecret::generate().unwrap();
        let hash = hasher.hash(&secret).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains(secret.expose()));
        assert!(hasher.verify(&secret, Some(hash.clone())).await.unwrap());
        assert!(!hasher.verify(&other, Some(hash.clone())).await.unwrap());
        assert!(!hasher.verify(&secret, None).await.unwrap());
        assert_ne!(secret.selector(), other.selector());
        assert_eq!(secret.selector().len(), 16);
        assert!(!secret.expose().contains(&secret.selector()));
    }

    #[test]
    fn bad_params_are_reported() {
        let params = HashParams {
            memory_kib: 1,
            iterations: 0,
            parallelism: 1,
        };
        assert!(params.validate().is_err());
        assert!(HashParams::default().validate().is_ok());
    }
}
