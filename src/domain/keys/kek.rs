//! The key-encryption key (KEK): AES-256-GCM over each signing key's PKCS#8 document, so the
//! database never holds a usable private key.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::unexpected;
use crate::domain::error::{Error, Result};

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

    pub(super) fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut data = plaintext.to_vec();
        let nonce = self
            .cipher
            .seal_in_place_append_tag(Aad::from(aad.as_bytes()), &mut data)
            .map_err(|_| unexpected("sealing a signing key failed"))?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&data);
        Ok(out)
    }

    pub(super) fn open(&self, aad: &str, sealed: &[u8]) -> Result<Vec<u8>> {
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
}
