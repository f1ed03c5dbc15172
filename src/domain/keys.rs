//! Signing keys: generated on first start, stored with the private half sealed under the
//! key-encryption key (KEK), held in memory for signing and verification. The hot path only
//! reads an `Arc` snapshot; it never touches the database.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::clock::to_micros;
use super::error::{Error, Result};
use crate::store::{KeyRow, KeyStore};

/// Signature algorithms tokend signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    /// Ed25519 (RFC 8037). The default: small keys and signatures, fast, no nonce pitfalls.
    EdDsa,
    /// ECDSA P-256 with SHA-256, for verifiers without Ed25519 support.
    Es256,
}

impl SigningAlgorithm {
    /// Parses the JOSE name (`EdDSA`, `ES256`).
    pub fn parse(name: &str) -> std::result::Result<Self, String> {
        match name {
            "EdDSA" => Ok(Self::EdDsa),
            "ES256" => Ok(Self::Es256),
            other => Err(format!(
                "unsupported signing algorithm {other:?}: use \"EdDSA\" or \"ES256\""
            )),
        }
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
        }
    }

    fn jwt(self) -> Algorithm {
        match self {
            Self::EdDsa => Algorithm::EdDSA,
            Self::Es256 => Algorithm::ES256,
        }
    }
}

/// The key-encryption key: AES-256-GCM over each signing key's PKCS#8 document, with the key id
/// as associated data so sealed keys cannot be swapped between rows.
pub struct Kek {
    cipher: RandomizedNonceKey,
    id: String,
    /// HMAC-SHA256 key derived from the KEK, for values only the server can compute.
    mac: aws_lc_rs::hmac::Key,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Kek {
    /// Parses a KEK given as base64 (standard or URL-safe) of exactly 32 bytes.
    pub fn from_base64(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| "the key-encryption key is not valid base64".to_owned())?;
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, String> {
        if bytes.len() != 32 {
            return Err(format!(
                "the key-encryption key must be 32 bytes (got {}): generate one with \
                 `openssl rand -base64 32`",
                bytes.len()
            ));
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
        let id = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let cipher = RandomizedNonceKey::new(&AES_256_GCM, bytes)
            .map_err(|_| "the key-encryption key was rejected".to_owned())?;
        let derived = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, bytes),
            b"tokend derived mac key v1",
        );
        let mac = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, derived.as_ref());
        Ok(Self { cipher, id, mac })
    }

    /// A new random KEK and its base64 form (to be saved by the caller).
    pub fn generate() -> Result<(Self, String)> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| unexpected("system random source failed"))?;
        let text = STANDARD.encode(bytes);
        let kek = Self::from_bytes(&bytes).map_err(|e| Error::Unexpected(anyhow::anyhow!(e)))?;
        Ok((kek, text))
    }

    /// HMAC-SHA256 of `data` under a key derived from the KEK: deterministic, and unguessable
    /// without the KEK.
    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        let tag = aws_lc_rs::hmac::sign(&self.mac, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Identifies the KEK without revealing it (first 8 bytes of its SHA-256, hex).
    pub fn id(&self) -> &str {
        &self.id
    }

    fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut data = plaintext.to_vec();
        let nonce = self
            .cipher
            .seal_in_place_append_tag(Aad::from(aad.as_bytes()), &mut data)
            .map_err(|_| unexpected("sealing a signing key failed"))?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&data);
        Ok(out)
    }

    fn open(&self, aad: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return Err(unexpected("sealed signing key is truncated"));
        }
        let (nonce, data) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| unexpected("sealed signing key has a bad nonce"))?;
        let mut data = data.to_vec();
        let plain = self
            .cipher
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut data)
            .map_err(|_| {
                unexpected(&format!(
                    "signing key {aad} does not decrypt under KEK {}",
                    self.id
                ))
            })?;
        Ok(plain.to_vec())
    }
}

fn unexpected(msg: &str) -> Error {
    Error::Unexpected(anyhow::anyhow!(msg.to_owned()))
}

/// A public JSON Web Key (RFC 7517), as published in the JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kty: String,
    pub kid: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub alg: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub y: Option<String>,
}

/// A signing key in memory: both halves, ready to sign and verify.
pub struct SigningKey {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    pub jwk: PublicJwk,
    pub activate_time: OffsetDateTime,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Builds the key from its PKCS#8 document.
    fn from_pkcs8(
        kid: &str,
        algorithm: SigningAlgorithm,
        pkcs8: &[u8],
        activate_time: OffsetDateTime,
    ) -> Result<Self> {
        let bad = |_| {
            unexpected(&format!(
                "signing key {kid} is not a valid {} key",
                algorithm.name()
            ))
        };
        let (jwk, decoding, encoding) = match algorithm {
            SigningAlgorithm::EdDsa => {
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(bad)?;
                let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
                let decoding = DecodingKey::from_ed_components(&x)
                    .map_err(|_| unexpected("bad Ed25519 public key"))?;
                (
                    jwk(kid, "OKP", algorithm, "Ed25519", x, None),
                    decoding,
                    EncodingKey::from_ed_der(pkcs8),
                )
            }
            SigningAlgorithm::Es256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(bad)?;
                let point = pair.public_key().as_ref();
                if point.len() != 65 {
                    return Err(unexpected("unexpected P-256 public key encoding"));
                }
                let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
                let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
                let decoding = DecodingKey::from_ec_components(&x, &y)
                    .map_err(|_| unexpected("bad P-256 public key"))?;
                (
                    jwk(kid, "EC", algorithm, "P-256", x, Some(y)),
                    decoding,
                    EncodingKey::from_ec_der(pkcs8),
                )
            }
        };
        Ok(Self {
            kid: kid.to_owned(),
            algorithm,
            jwk,
            activate_time,
            encoding,
            decoding,
        })
    }

    /// The JWT algorithm.
    pub fn jwt_algorithm(&self) -> Algorithm {
        self.algorithm.jwt()
    }

    /// The private half, for signing.
    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    /// The public half, for verifying.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }
}

fn jwk(
    kid: &str,
    kty: &str,
    alg: SigningAlgorithm,
    crv: &str,
    x: String,
    y: Option<String>,
) -> PublicJwk {
    PublicJwk {
        kty: kty.into(),
        kid: kid.into(),
        use_: "sig".into(),
        alg: alg.name().into(),
        crv: Some(crv.into()),
        x: Some(x),
        y,
    }
}

fn generate_pkcs8(algorithm: SigningAlgorithm) -> Result<Vec<u8>> {
    let rng = SystemRandom::new();
    let doc = match algorithm {
        SigningAlgorithm::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng),
        SigningAlgorithm::Es256 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        }
    }
    .map_err(|_| unexpected("key generation failed"))?;
    Ok(doc.as_ref().to_vec())
}

#[derive(Debug)]
struct KeySet {
    signing: Arc<SigningKey>,
    by_kid: HashMap<String, Arc<SigningKey>>,
    /// Newest first.
    published: Vec<PublicJwk>,
}

/// The keys this replica signs and verifies with.
#[derive(Debug)]
pub struct KeyRing {
    current: RwLock<Arc<KeySet>>,
}

impl KeyRing {
    /// Loads every stored key; if there is none yet, generates one of `algorithm` first (only
    /// one replica wins when several start at once; the others load the winner's key).
    pub async fn load_or_create(
        store: &dyn KeyStore,
        kek: &Kek,
        algorithm: SigningAlgorithm,
        now: OffsetDateTime,
    ) -> Result<Self> {
        let mut rows = store.list_keys().await?;
        if rows.is_empty() {
            let row = Self::new_row(kek, algorithm, now)?;
            if store.insert_first_key(&row).await? {
                tracing::info!(kid = %row.kid, algorithm = algorithm.name(), "generated the first signing key");
            }
            rows = store.list_keys().await?;
        }
        let keys = rows
            .iter()
            .filter(|r| r.retire_time_us.is_none_or(|t| t > to_micros(now)))
            .map(|row| Self::open_row(kek, row))
            .collect::<Result<Vec<_>>>()?;
        let signing = keys
            .iter()
            .filter(|k| k.activate_time <= now)
            .max_by_key(|k| (k.activate_time, k.kid.clone()))
            .cloned()
            .ok_or_else(|| unexpected("no signing key is active"))?;
        let set = KeySet {
            signing,
            by_kid: keys.iter().map(|k| (k.kid.clone(), k.clone())).collect(),
            published: keys.iter().map(|k| k.jwk.clone()).collect(),
        };
        Ok(Self {
            current: RwLock::new(Arc::new(set)),
        })
    }

    fn new_row(kek: &Kek, algorithm: SigningAlgorithm, now: OffsetDateTime) -> Result<KeyRow> {
        let kid = uuid::Uuid::now_v7().simple().to_string();
        let pkcs8 = generate_pkcs8(algorithm)?;
        let key = SigningKey::from_pkcs8(&kid, algorithm, &pkcs8, now)?;
        let public_jwk =
            serde_json::to_string(&key.jwk).map_err(|e| Error::Unexpected(e.into()))?;
        Ok(KeyRow {
            private_key: kek.seal(&kid, &pkcs8)?,
            kid,
            algorithm: algorithm.name().to_owned(),
            public_jwk,
            kek_id: kek.id().to_owned(),
            create_time_us: to_micros(now),
            activate_time_us: to_micros(now),
            retire_time_us: None,
        })
    }

    fn open_row(kek: &Kek, row: &KeyRow) -> Result<Arc<SigningKey>> {
        if row.kek_id != kek.id() {
            return Err(unexpected(&format!(
                "signing key {} is sealed under KEK {} but the configured KEK is {}: \
                 configure the KEK this database was created with",
                row.kid,
                row.kek_id,
                kek.id()
            )));
        }
        let algorithm = SigningAlgorithm::parse(&row.algorithm).map_err(|e| unexpected(&e))?;
        let pkcs8 = kek.open(&row.kid, &row.private_key)?;
        let activate = super::clock::from_micros(row.activate_time_us);
        Ok(Arc::new(SigningKey::from_pkcs8(
            &row.kid, algorithm, &pkcs8, activate,
        )?))
    }

    fn snapshot(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The key new tokens are signed with.
    pub fn signing_key(&self) -> Arc<SigningKey> {
        self.snapshot().signing.clone()
    }

    /// The key with this id, if it may verify tokens.
    pub fn verifying_key(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.snapshot().by_kid.get(kid).cloned()
    }

    /// Public keys to publish, newest first.
    pub fn jwks(&self) -> Vec<PublicJwk> {
        self.snapshot().published.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kek_round_trip_binds_the_kid() {
        let (kek, text) = Kek::generate().unwrap();
        let again = Kek::from_base64(&text).unwrap();
        assert_eq!(kek.id(), again.id());
        let sealed = kek.seal("kid-1", b"private").unwrap();
        assert_eq!(again.open("kid-1", &sealed).unwrap(), b"private");
        assert!(again.open("kid-2", &sealed).is_err());
        let (other, _) = Kek::generate().unwrap();
        assert!(other.open("kid-1", &sealed).is_err());
    }

    #[test]
    fn kek_must_be_32_bytes_of_base64() {
        assert!(Kek::from_base64("not base64!").is_err());
        assert!(
            Kek::from_base64(&STANDARD.encode([0u8; 16]))
                .unwrap_err()
                .contains("32 bytes")
        );
    }

    #[test]
    fn generated_keys_sign_and_verify() {
        for alg in [SigningAlgorithm::EdDsa, SigningAlgorithm::Es256] {
            let pkcs8 = generate_pkcs8(alg).unwrap();
            let key = SigningKey::from_pkcs8("k", alg, &pkcs8, OffsetDateTime::UNIX_EPOCH).unwrap();
            let header = jsonwebtoken::Header::new(key.jwt_algorithm());
            let claims = serde_json::json!({"sub": "x", "exp": 4_000_000_000u64});
            let token = jsonwebtoken::encode(&header, &claims, key.encoding_key()).unwrap();
            let validation = jsonwebtoken::Validation::new(key.jwt_algorithm());
            let ok =
                jsonwebtoken::decode::<serde_json::Value>(&token, key.decoding_key(), &validation);
            assert!(ok.is_ok(), "{alg:?}: {ok:?}");
        }
    }
}
