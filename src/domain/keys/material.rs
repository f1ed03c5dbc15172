//! Key material: the algorithms tokend signs with, generating a private key (PKCS#8), and
//! turning one into a signing key with its public JWK.

use std::fmt;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};

use super::unexpected;
use crate::domain::error::Result;

/// Signature algorithms tokend signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    /// Ed25519 (RFC 8037). The default: small keys and signatures, fast, no nonce pitfalls.
    EdDsa,
    /// ECDSA P-256 with SHA-256, for verifiers without Ed25519 support.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 over a 2048-bit key, for verifiers that know nothing
    /// else (older gateways and JOSE libraries). Signing is slower and tokens longer.
    Rs256,
}

impl SigningAlgorithm {
    /// Parses the JOSE name (`EdDSA`, `ES256`, `RS256`).
    pub fn parse(name: &str) -> std::result::Result<Self, String> {
        match name {
            "EdDSA" => Ok(Self::EdDsa),
            "ES256" => Ok(Self::Es256),
            "RS256" => Ok(Self::Rs256),
            other => Err(format!(
                "unsupported signing algorithm {other:?}: use \"EdDSA\", \"ES256\" or \"RS256\""
            )),
        }
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }

    fn jwt(self) -> Algorithm {
        match self {
            Self::EdDsa => Algorithm::EdDSA,
            Self::Es256 => Algorithm::ES256,
            Self::Rs256 => Algorithm::RS256,
        }
    }
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
    /// RSA modulus, base64url.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub n: Option<String>,
    /// RSA public exponent, base64url.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub e: Option<String>,
}

impl PublicJwk {
    fn new(kid: &str, kty: &str, alg: SigningAlgorithm) -> Self {
        Self {
            kty: kty.into(),
            kid: kid.into(),
            use_: "sig".into(),
            alg: alg.name().into(),
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
        }
    }
}

/// A signing key in memory: both halves, ready to sign and verify. Its lifecycle times live in
/// the key ring, which may learn new ones on reload without reopening the key.
pub struct SigningKey {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    pub jwk: PublicJwk,
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
    pub(super) fn from_pkcs8(kid: &str, algorithm: SigningAlgorithm, pkcs8: &[u8]) -> Result<Self> {
        let mut jwk = PublicJwk::new(kid, algorithm_kty(algorithm), algorithm);
        let halves = match algorithm {
            SigningAlgorithm::EdDsa => ed25519(pkcs8, &mut jwk),
            SigningAlgorithm::Es256 => p256(pkcs8, &mut jwk),
            SigningAlgorithm::Rs256 => rsa(pkcs8, &mut jwk),
        };
        let (decoding, encoding) = halves.ok_or_else(|| {
            unexpected(&format!(
                "signing key {kid} is not a valid {} key",
                algorithm.name()
            ))
        })?;
        Ok(Self {
            kid: kid.to_owned(),
            algorithm,
            jwk,
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

type Halves = (DecodingKey, EncodingKey);

fn ed25519(pkcs8: &[u8], jwk: &mut PublicJwk) -> Option<Halves> {
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8).ok()?;
    let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    let decoding = DecodingKey::from_ed_components(&x).ok()?;
    jwk.crv = Some("Ed25519".into());
    jwk.x = Some(x);
    Some((decoding, EncodingKey::from_ed_der(pkcs8)))
}

fn p256(pkcs8: &[u8], jwk: &mut PublicJwk) -> Option<Halves> {
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).ok()?;
    // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
    let point = pair.public_key().as_ref();
    if point.len() != 65 {
        return None;
    }
    let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
    let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
    let decoding = DecodingKey::from_ec_components(&x, &y).ok()?;
    jwk.crv = Some("P-256".into());
    jwk.x = Some(x);
    jwk.y = Some(y);
    Some((decoding, EncodingKey::from_ec_der(pkcs8)))
}

fn rsa(pkcs8: &[u8], jwk: &mut PublicJwk) -> Option<Halves> {
    let pair = RsaKeyPair::from_pkcs8(pkcs8).ok()?;
    let public = pair.public_key();
    let n = public.modulus().big_endian_without_leading_zero();
    let e = public.exponent().big_endian_without_leading_zero();
    // jsonwebtoken's aws-lc backend signs with `RsaKeyPair::from_der`, which takes the bare
    // PKCS#1 RSAPrivateKey rather than its PKCS#8 wrapping.
    let pkcs1 = pkcs8_private_key(pkcs8)?;
    jwk.n = Some(URL_SAFE_NO_PAD.encode(n));
    jwk.e = Some(URL_SAFE_NO_PAD.encode(e));
    Some((
        DecodingKey::from_rsa_raw_components(n, e),
        EncodingKey::from_rsa_der(pkcs1),
    ))
}

fn algorithm_kty(algorithm: SigningAlgorithm) -> &'static str {
    match algorithm {
        SigningAlgorithm::EdDsa => "OKP",
        SigningAlgorithm::Es256 => "EC",
        SigningAlgorithm::Rs256 => "RSA",
    }
}

/// A new private key as PKCS#8 DER. RSA generation takes tens of milliseconds of CPU: call
/// this off the async workers.
pub(super) fn generate_pkcs8(algorithm: SigningAlgorithm) -> Result<Vec<u8>> {
    let failed = |_| unexpected("key generation failed");
    let rng = SystemRandom::new();
    Ok(match algorithm {
        SigningAlgorithm::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(failed)?
            .as_ref()
            .to_vec(),
        SigningAlgorithm::Es256 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(failed)?
                .as_ref()
                .to_vec()
        }
        SigningAlgorithm::Rs256 => RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(failed)?
            .as_der()
            .map_err(failed)?
            .as_ref()
            .to_vec(),
    })
}

/// The `privateKey` OCTET STRING of a PKCS#8 `PrivateKeyInfo` (RFC 5208):
/// `SEQUENCE { INTEGER version, SEQUENCE algorithm, OCTET STRING privateKey, ... }`.
fn pkcs8_private_key(pkcs8: &[u8]) -> Option<&[u8]> {
    let (tag, info, _) = der_element(pkcs8)?;
    if tag != 0x30 {
        return None;
    }
    let (0x02, _, rest) = der_element(info)? else {
        return None;
    };
    let (0x30, _, rest) = der_element(rest)? else {
        return None;
    };
    let (0x04, key, _) = der_element(rest)? else {
        return None;
    };
    Some(key)
}

/// Splits one DER element off `input`: (tag, contents, rest). Definite lengths only, as DER
/// requires; at most 4 length bytes.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [SigningAlgorithm; 3] = [
        SigningAlgorithm::EdDsa,
        SigningAlgorithm::Es256,
        SigningAlgorithm::Rs256,
    ];

    fn sign(key: &SigningKey) -> String {
        let mut header = jsonwebtoken::Header::new(key.jwt_algorithm());
        header.kid = Some(key.kid.clone());
        let claims = serde_json::json!({"sub": "x", "exp": 4_000_000_000u64});
        jsonwebtoken::encode(&header, &claims, key.encoding_key()).unwrap()
    }

    #[test]
    fn generated_keys_sign_and_verify() {
        for alg in ALL {
            let pkcs8 = generate_pkcs8(alg).unwrap();
            let key = SigningKey::from_pkcs8("k", alg, &pkcs8).unwrap();
            let token = sign(&key);
            let validation = jsonwebtoken::Validation::new(key.jwt_algorithm());
            let ok =
                jsonwebtoken::decode::<serde_json::Value>(&token, key.decoding_key(), &validation);
            assert!(ok.is_ok(), "{alg:?}: {ok:?}");
        }
    }

    #[test]
    fn published_jwk_verifies_with_stock_jsonwebtoken() {
        for alg in ALL {
            let pkcs8 = generate_pkcs8(alg).unwrap();
            let key = SigningKey::from_pkcs8("kid-1", alg, &pkcs8).unwrap();
            let token = sign(&key);
            let set = serde_json::json!({ "keys": [key.jwk] }).to_string();
            let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&set).unwrap();
            let jwk = set.find("kid-1").expect("kid in the set");
            let decoding = DecodingKey::from_jwk(jwk).unwrap();
            let validation = jsonwebtoken::Validation::new(alg.jwt());
            let ok = jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation);
            assert!(ok.is_ok(), "{alg:?}: {ok:?}");
            // Another key of the same kind does not verify it.
            let other = SigningKey::from_pkcs8("k2", alg, &generate_pkcs8(alg).unwrap()).unwrap();
            let bad = jsonwebtoken::decode::<serde_json::Value>(
                &token,
                other.decoding_key(),
                &validation,
            );
            assert!(bad.is_err(), "{alg:?}");
        }
    }

    #[test]
    fn rsa_jwk_carries_modulus_and_exponent() {
        let pkcs8 = generate_pkcs8(SigningAlgorithm::Rs256).unwrap();
        let key = SigningKey::from_pkcs8("r", SigningAlgorithm::Rs256, &pkcs8).unwrap();
        assert_eq!(key.jwk.kty, "RSA");
        assert_eq!(key.jwk.crv, None);
        assert_eq!(key.jwk.e.as_deref(), Some("AQAB"));
        let n = URL_SAFE_NO_PAD.decode(key.jwk.n.unwrap()).unwrap();
        assert_eq!(n.len(), 256, "2048-bit modulus");
    }

    #[test]
    fn pkcs8_unwrapping_yields_the_pkcs1_key() {
        let pkcs8 = generate_pkcs8(SigningAlgorithm::Rs256).unwrap();
        let pkcs1 = pkcs8_private_key(&pkcs8).unwrap();
        let a = RsaKeyPair::from_pkcs8(&pkcs8).unwrap();
        let b = RsaKeyPair::from_der(pkcs1).unwrap();
        assert_eq!(a.public_key().as_ref(), b.public_key().as_ref());
        assert_eq!(pkcs8_private_key(&pkcs8[..pkcs8.len() - 1]), None);
        assert_eq!(pkcs8_private_key(&[0x30, 0x03, 0x02, 0x01, 0x00]), None);
        assert_eq!(der_element(&[0x04, 0x85, 1, 1, 1, 1, 1]), None);
    }

    #[test]
    fn a_key_of_another_algorithm_is_refused() {
        let ed = generate_pkcs8(SigningAlgorithm::EdDsa).unwrap();
        for alg in [SigningAlgorithm::Es256, SigningAlgorithm::Rs256] {
            let err = SigningKey::from_pkcs8("k", alg, &ed).unwrap_err();
            assert!(
                matches!(err, crate::domain::Error::Unexpected(_)),
                "{alg:?}"
            );
        }
    }

    #[test]
    fn algorithm_names_round_trip() {
        for alg in ALL {
            assert_eq!(SigningAlgorithm::parse(alg.name()), Ok(alg));
        }
        assert!(
            SigningAlgorithm::parse("HS256")
                .unwrap_err()
                .contains("RS256")
        );
    }
}
