//! A client's own public keys (`jwks`, RFC 7591 client metadata): the JWK Set a client
//! registers so that it can prove itself with assertions signed by the private half
//! (`private_key_jwt`, RFC 7523 section 2.2) instead of a shared secret.
//!
//! Parsed once, when the client is created, changed or loaded: each key becomes a ready
//! verification key with the one or two algorithms its type allows, so the verifier binds
//! the header's `alg` to the key and never trusts it to pick the kind of check (no HMAC with
//! a public key as the secret, no `none`). Private members are refused: tokend must never
//! hold a client's private key, and a set that carries one was pasted by mistake.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use crate::domain::error::{Error, Result};

/// Largest JWK Set accepted, in bytes of JSON.
pub const MAX_JWKS_LEN: usize = 32 * 1024;
/// Most keys in one set (a current key and a few being rotated in or out).
pub const MAX_KEYS: usize = 10;
const MAX_KID: usize = 128;
/// Largest published JWK Set read (a `jwks_uri` or an issuer's keys).
pub const MAX_PUBLISHED_LEN: usize = 64 * 1024;
/// Most keys of a published set looked at.
const MAX_PUBLISHED_KEYS: usize = 100;
/// Smallest and largest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;
/// JWK members that belong to private or symmetric keys (RFC 7518 section 6).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The algorithms a client assertion may be signed with (RFC 8414's
/// `token_endpoint_auth_signing_alg_values_supported`).
pub const ASSERTION_ALGORITHMS: [&str; 5] = ["EdDSA", "ES256", "ES384", "RS256", "PS256"];

/// One public key of a client, ready to verify with.
#[derive(Clone)]
pub struct ClientKey {
    /// `kid`; may be absent only in a set of one key.
    pub kid: Option<String>,
    /// The algorithms this key verifies: fixed by its type (and narrowed by its `alg`).
    pub algorithms: Vec<Algorithm>,
    pub key: DecodingKey,
    /// The key's public numbers, for comparing it with a certificate's key
    /// (`self_signed_tls_client_auth`).
    pub material: KeyMaterial,
}

/// A public key's numbers in one canonical form, whether it came from a JWK or from a
/// certificate's SubjectPublicKeyInfo: the same key compares equal either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    /// An Ed25519 key's 32 bytes.
    Ed25519(Vec<u8>),
    /// An EC key: its curve (`P-256`, `P-384`) and uncompressed point (`04 || x || y`).
    Ec { curve: &'static str, point: Vec<u8> },
    /// An RSA key's modulus and exponent, big-endian, without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// A client's JWK Set: the text as stored (compact JSON) and its parsed keys.
#[derive(Clone, Debug)]
pub struct ClientJwks {
    text: String,
    keys: Vec<ClientKey>,
}

impl PartialEq for ClientJwks {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl ClientJwks {
    /// Parses a JWK Set given as JSON text; `field` names it in errors.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        if raw.len() > MAX_JWKS_LEN {
            return Err(Error::invalid(
                field,
                format!("must be at most {MAX_JWKS_LEN} bytes"),
            ));
        }
        let value: Value = serde_json::from_str(raw).map_err(|e| {
            Error::invalid(
                field,
                format!("is not JSON: {e}; give a JWK Set {{\"keys\": [...]}}"),
            )
        })?;
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::invalid(field, "must be a JWK Set: {\"keys\": [...]}"))?;
        if keys.is_empty() || keys.len() > MAX_KEYS {
            return Err(Error::invalid(
                field,
                format!("must hold 1-{MAX_KEYS} keys"),
            ));
        }
        let parsed = keys
            .iter()
            .enumerate()
            .map(|(i, key)| parse_key(&format!("{field}.keys[{i}]"), key))
            .collect::<Result<Vec<_>>>()?;
        check_kids(field, &parsed)?;
        Ok(Self {
            text: value.to_string(),
            keys: parsed,
        })
    }

    /// Parses a JWK Set another server publishes (a client's `jwks_uri`, a federated
    /// issuer's keys). Unlike a registered set, a key tokend cannot use (an encryption key, an
    /// unsupported type, a duplicate `kid`) is skipped rather than failing the set: the
    /// publisher serves other verifiers too. At least one usable key is required.
    pub fn parse_published(raw: &str) -> Result<Self> {
        const FIELD: &str = "jwks";
        if raw.len() > MAX_PUBLISHED_LEN {
            return Err(Error::invalid(
                FIELD,
                format!("must be at most {MAX_PUBLISHED_LEN} bytes"),
            ));
        }
        let value: Value = serde_json::from_str(raw)
            .map_err(|e| Error::invalid(FIELD, format!("is not JSON: {e}")))?;
        let listed = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::invalid(FIELD, "is not a JWK Set: {\"keys\": [...]}"))?;
        let mut keys: Vec<ClientKey> = Vec::new();
        for (i, key) in listed.iter().enumerate().take(MAX_PUBLISHED_KEYS) {
            match parse_key(&format!("{FIELD}.keys[{i}]"), key) {
                Ok(key) if keys.iter().any(|k| k.kid.is_some() && k.kid == key.kid) => {
                    tracing::debug!(kid = ?key.kid, "published key skipped: its kid is taken");
                }
                Ok(key) => keys.push(key),
                Err(err) => tracing::debug!(error = %err, "published key skipped"),
            }
        }
        if keys.is_empty() {
            return Err(Error::invalid(
                FIELD,
                "holds no key tokend can verify signatures with",
            ));
        }
        Ok(Self {
            text: value.to_string(),
            keys,
        })
    }

    /// The set as stored and shown (compact JSON).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `material` is one of the set's keys (a self-signed certificate's key).
    pub fn contains(&self, material: &KeyMaterial) -> bool {
        self.keys.iter().any(|k| &k.material == material)
    }

    /// The key an assertion names by `kid`; without a `kid`, the set's only key.
    pub fn select(&self, kid: Option<&str>) -> Option<&ClientKey> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }
}

/// Every key needs a `kid` unique in the set, except the only key of a set of one.
fn check_kids(field: &str, keys: &[ClientKey]) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, key) in keys.iter().enumerate() {
        match &key.kid {
            None if keys.len() > 1 => {
                return Err(Error::invalid(
                    format!("{field}.keys[{i}].kid"),
                    "is required when the set holds more than one key",
                ));
            }
            None => {}
            Some(kid) if !seen.insert(kid.as_str()) => {
                return Err(Error::invalid(
                    format!("{field}.keys[{i}].kid"),
                    format!("{kid:?} is used by two keys; kids must be unique in the set"),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn parse_key(field: &str, key: &Value) -> Result<ClientKey> {
    let key = key
        .as_object()
        .ok_or_else(|| Error::invalid(field, "must be a JSON object (a JWK)"))?;
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| key.contains_key(**m)) {
        return Err(Error::invalid(
            format!("{field}.{member}"),
            "is a private or symmetric key member: register public keys only (never send a \
             private key to tokend)",
        ));
    }
    let kid = optional_text(field, key, "kid")?;
    if kid
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > MAX_KID)
    {
        return Err(Error::invalid(
            format!("{field}.kid"),
            format!("must be 1-{MAX_KID} characters"),
        ));
    }
    if let Some(use_) = optional_text(field, key, "use")?
        && use_ != "sig"
    {
        return Err(Error::invalid(
            format!("{field}.use"),
            format!("{use_:?}: a client's key is for signatures, \"sig\""),
        ));
    }
    let (algorithms, decoding, material) = match required_text(field, key, "kty")?.as_str() {
        "OKP" => okp_key(field, key)?,
        "EC" => ec_key(field, key)?,
        "RSA" => rsa_key(field, key)?,
        other => {
            return Err(Error::invalid(
                format!("{field}.kty"),
                format!("{other:?} is not supported: use OKP (Ed25519), EC (P-256, P-384) or RSA"),
            ));
        }
    };
    Ok(ClientKey {
        kid,
        algorithms: narrowed(field, key, algorithms)?,
        key: decoding,
        material,
    })
}

/// The key type's algorithms, narrowed to the key's own `alg` when it names one.
fn narrowed(
    field: &str,
    key: &Map<String, Value>,
    allowed: Vec<Algorithm>,
) -> Result<Vec<Algorithm>> {
    let Some(alg) = optional_text(field, key, "alg")? else {
        return Ok(allowed);
    };
    let named = alg
        .parse::<Algorithm>()
        .ok()
        .filter(|a| allowed.contains(a));
    match named {
        Some(alg) => Ok(vec![alg]),
        None => {
            let names: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
            Err(Error::invalid(
                format!("{field}.alg"),
                format!("{alg:?} does not fit this key; use {}", names.join(" or ")),
            ))
        }
    }
}

/// A key's algorithms, its verification key and its numbers.
type Parsed = (Vec<Algorithm>, DecodingKey, KeyMaterial);

fn okp_key(field: &str, key: &Map<String, Value>) -> Result<Parsed> {
    let crv = required_text(field, key, "crv")?;
    if crv != "Ed25519" {
        return Err(Error::invalid(
            format!("{field}.crv"),
            format!("{crv:?}: an OKP key must be Ed25519"),
        ));
    }
    let x = coordinate(field, key, "x", 32)?;
    let decoding = DecodingKey::from_ed_der(&x);
    Ok((vec![Algorithm::EdDSA], decoding, KeyMaterial::Ed25519(x)))
}

fn ec_key(field: &str, key: &Map<String, Value>) -> Result<Parsed> {
    let crv = required_text(field, key, "crv")?;
    let (alg, len, curve) = match crv.as_str() {
        "P-256" => (Algorithm::ES256, 32, "P-256"),
        "P-384" => (Algorithm::ES384, 48, "P-384"),
        _ => {
            return Err(Error::invalid(
                format!("{field}.crv"),
                format!("{crv:?}: an EC key must be P-256 or P-384"),
            ));
        }
    };
    let mut point = vec![0x04];
    point.extend(coordinate(field, key, "x", len)?);
    point.extend(coordinate(field, key, "y", len)?);
    let decoding = DecodingKey::from_ec_der(&point);
    Ok((vec![alg], decoding, KeyMaterial::Ec { curve, point }))
}

fn rsa_key(field: &str, key: &Map<String, Value>) -> Result<Parsed> {
    let n = unsigned(field, key, "n")?;
    let bits = n.len() * 8 - n[0].leading_zeros() as usize;
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(Error::invalid(
            format!("{field}.n"),
            format!("the modulus has {bits} bits; RSA keys need {MIN_RSA_BITS}-{MAX_RSA_BITS}"),
        ));
    }
    let e = unsigned(field, key, "e")?;
    let odd = e.last().is_some_and(|b| b & 1 == 1);
    if e.len() > 4 || !odd || (e.len() == 1 && e[0] < 3) {
        return Err(Error::invalid(
            format!("{field}.e"),
            "must be a small odd public exponent such as AQAB (65537)",
        ));
    }
    let decoding = DecodingKey::from_rsa_raw_components(&n, &e);
    let material = KeyMaterial::Rsa { n, e };
    Ok((vec![Algorithm::RS256, Algorithm::PS256], decoding, material))
}

/// A fixed-length base64url member (an OKP key or an EC coordinate).
fn coordinate(field: &str, key: &Map<String, Value>, name: &str, len: usize) -> Result<Vec<u8>> {
    let bytes = base64url(field, key, name)?;
    if bytes.len() != len {
        return Err(Error::invalid(
            format!("{field}.{name}"),
            format!(
                "must encode {len} bytes for this curve (got {})",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// A big-endian unsigned integer member (RSA `n`, `e`), leading zeros dropped; never empty.
fn unsigned(field: &str, key: &Map<String, Value>, name: &str) -> Result<Vec<u8>> {
    let bytes = base64url(field, key, name)?;
    let start = bytes.iter().position(|b| *b != 0);
    match start {
        Some(start) => Ok(bytes[start..].to_vec()),
        None => Err(Error::invalid(
            format!("{field}.{name}"),
            "must not be zero",
        )),
    }
}

fn base64url(field: &str, key: &Map<String, Value>, name: &str) -> Result<Vec<u8>> {
    let text = required_text(field, key, name)?;
    URL_SAFE_NO_PAD.decode(text.as_bytes()).map_err(|_| {
        Error::invalid(
            format!("{field}.{name}"),
            "must be base64url without padding",
        )
    })
}

fn required_text(field: &str, key: &Map<String, Value>, name: &str) -> Result<String> {
    optional_text(field, key, name)?
        .ok_or_else(|| Error::invalid(format!("{field}.{name}"), "is required"))
}

fn optional_text(field: &str, key: &Map<String, Value>, name: &str) -> Result<Option<String>> {
    match key.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::invalid(
            format!("{field}.{name}"),
            "must be a string",
        )),
    }
}

#[cfg(test)]
#[path = "jwks_tests.rs"]
mod tests;
