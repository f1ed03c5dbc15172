//! Client secrets: generated with 256 bits of entropy and a recognisable prefix (so secret
//! scanners can find leaked ones), kept only as argon2id hashes, and checked on a bounded
//! blocking pool so hashing never stalls the async runtime.

use std::fmt;
use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use tracing::Instrument as _;

use super::error::{Error, Result};

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

/// Hashes and verifies secrets on the blocking pool, at most `permits` at a time, so a burst of
/// logins (or of wrong secrets) queues instead of taking every core from `Introspect`.
#[derive(Clone)]
pub struct SecretHasher {
    argon2: Argon2<'static>,
    permits: Arc<Semaphore>,
    /// Verified against when a client has no live secret, so that unknown clients cost the
    /// same time as wrong secrets.
    dummy_hash: Arc<str>,
}

impl fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretHasher")
            .field("available_permits", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl SecretHasher {
    /// A hasher with the given cost, running at most `concurrency` hashes at once.
    pub fn new(params: HashParams, concurrency: usize) -> Result<Self> {
        let argon2 = params
            .argon2()
            .map_err(|e| Error::Unexpected(anyhow::anyhow!(e)))?;
        let dummy = argon2
            .hash_password(b"tokend dummy secret, never issued")
            .map_err(|e| Error::Unexpected(anyhow::anyhow!("argon2: {e}")))?
            .to_string();
        Ok(Self {
            argon2,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: dummy.into(),
        })
    }

    /// The argon2id PHC string for `secret`.
    pub async fn hash(&self, secret: &ClientSecret) -> Result<String> {
        let argon2 = self.argon2.clone();
        let secret = SecretString::from(secret.expose().to_owned());
        self.run_blocking(move || {
            argon2
                .hash_password(secret.expose_secret().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| Error::Unexpected(anyhow::anyhow!("argon2: {e}")))
        })
        .await
    }

    /// Whether `secret` matches `hash`: exactly one argon2 verification either way. With no
    /// hash (unknown client, unknown secret) it verifies against a dummy hash of the same cost,
    /// so absence is not visible in timing.
    pub async fn verify(&self, secret: &ClientSecret, hash: Option<String>) -> Result<bool> {
        let argon2 = self.argon2.clone();
        let secret = SecretString::from(secret.expose().to_owned());
        let dummy = self.dummy_hash.clone();
        self.run_blocking(move || {
            let pw = secret.expose_secret().as_bytes();
            Ok(match hash {
                Some(hash) => argon2.verify_password(pw, hash.as_str()).is_ok(),
                None => {
                    let _ = argon2.verify_password(pw, &*dummy);
                    false
                }
            })
        })
        .await
    }

    async fn run_blocking<T, F>(&self, work: F) -> Result<T>
    where
        F: FnOnce() -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Unavailable("shutting down".into()))?;
        let span = tracing::info_span!("argon2");
        tokio::task::spawn_blocking(move || span.in_scope(work))
            .instrument(tracing::Span::current())
            .await
            .map_err(|e| Error::Unexpected(anyhow::anyhow!("hashing task failed: {e}")))?
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
