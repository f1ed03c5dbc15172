//! The key-encryption keys (KEKs): AES-256-GCM over each signing key's PKCS#8 document and over
//! the MAC key, so the database never holds a usable private key. Several may be configured
//! while one is being replaced: the current one seals, every one opens what it sealed.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::unexpected;
use crate::domain::error::{Error, Result};

/// A key-encryption key: AES-256-GCM with the sealed item's name (a signing key's kid) as
/// associated data, so sealed values cannot be swapped between rows.
pub struct Kek {
    cipher: RandomizedNonceKey,
    id: String,
    /// HMAC-SHA256 under the KEK itself, only to re-derive the MAC key versions before KEK
    /// rotation used (see [`Kek::derived_mac_key`]).
    root: hmac::Key,
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
        let root = hmac::Key::new(hmac::HMAC_SHA256, bytes);
        Ok(Self { cipher, id, root })
    }

    /// A new random KEK and its base64 form (to be saved by the caller).
    pub fn generate() -> Result<(Self, String)> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| unexpected("system random source failed"))?;
        let text = STANDARD.encode(bytes);
        let kek = Self::from_bytes(&bytes).map_err(|e| Error::Unexpected(anyhow::anyhow!(e)))?;
        Ok((kek, text))
    }

    /// The MAC key tokend derived from its one KEK before KEKs could rotate. A database created
    /// then adopts it as its stored MAC key, so replicas of either version agree on refresh
    /// successors during the upgrade (see `mac`).
    pub(super) fn derived_mac_key(&self) -> [u8; 32] {
        let tag = hmac::sign(&self.root, b"tokend derived mac key v1");
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
            .map_err(|_| unexpected(&format!("sealing {aad} failed")))?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&data);
        Ok(out)
    }

    pub(super) fn open(&self, aad: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return Err(unexpected(&format!("sealed {aad} is truncated")));
        }
        let (nonce, data) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| unexpected(&format!("sealed {aad} has a bad nonce")))?;
        let mut data = data.to_vec();
        let plain = self
            .cipher
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut data)
            .map_err(|_| unexpected(&format!("{aad} does not decrypt under KEK {}", self.id)))?;
        Ok(plain.to_vec())
    }
}

/// The configured KEKs: the current one first, which seals everything new (and everything
/// `tokend kek rotate` re-seals), then previous ones, which only open what they sealed.
#[derive(Debug)]
pub struct KekSet {
    keks: Vec<Kek>,
}

impl From<Kek> for KekSet {
    fn from(kek: Kek) -> Self {
        Self { keks: vec![kek] }
    }
}

impl KekSet {
    /// Parses a list of base64 KEKs separated by commas or whitespace (base64 has neither),
    /// the current one first: `NEW,OLD`. One entry is the usual case.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let entries: Vec<&str> = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
            .collect();
        if entries.is_empty() {
            return Err("no key-encryption key given".into());
        }
        let mut keks: Vec<Kek> = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let place = |e: String| match entries.len() {
                1 => e,
                n => format!("entry {} of {n}: {e}", i + 1),
            };
            let kek = Kek::from_base64(entry).map_err(place)?;
            if keks.iter().any(|k| k.id == kek.id) {
                return Err(place(format!("KEK {} is listed twice", kek.id)));
            }
            keks.push(kek);
        }
        Ok(Self { keks })
    }

    /// The KEK new material is sealed under.
    pub fn current(&self) -> &Kek {
        &self.keks[0]
    }

    /// The ids of every configured KEK, the current one first.
    pub fn ids(&self) -> Vec<&str> {
        self.keks.iter().map(Kek::id).collect()
    }

    /// The KEK with this id, or the error that says which KEK `what` needs.
    pub(super) fn require(&self, kek_id: &str, what: &str) -> Result<&Kek> {
        self.keks.iter().find(|k| k.id == kek_id).ok_or_else(|| {
            Error::Unexpected(anyhow::Error::new(KekNotConfigured {
                kek_id: kek_id.to_owned(),
                what: what.to_owned(),
                configured: self.ids().join(", "),
            }))
        })
    }

    /// Opens `sealed` (`what`, sealed with associated data `aad`) with the KEK named `kek_id`.
    pub(super) fn open(
        &self,
        kek_id: &str,
        what: &str,
        aad: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        self.require(kek_id, what)?.open(aad, sealed)
    }
}

/// Stored material is sealed under a KEK that is not configured: tokend cannot start (the
/// command line exits with the configuration error code).
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} is sealed under KEK {kek_id}, which keys.kek does not hold (it holds {configured}): \
     add that KEK to keys.kek after the current one, then run `tokend kek rotate`"
)]
pub struct KekNotConfigured {
    /// The missing KEK's id.
    pub kek_id: String,
    what: String,
    configured: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text() -> String {
        Kek::generate().unwrap().1
    }

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
    fn a_list_is_current_first_separated_by_commas_or_whitespace() {
        let (new, old) = (text(), text());
        let ids = |t: &str| {
            let set = KekSet::parse(t).unwrap();
            set.ids().iter().map(|s| s.to_string()).collect::<Vec<_>>()
        };
        let expected = [
            Kek::from_base64(&new).unwrap().id().to_owned(),
            Kek::from_base64(&old).unwrap().id().to_owned(),
        ];
        assert_eq!(ids(&format!("{new},{old}")), expected);
        assert_eq!(ids(&format!(" {new} , {old},")), expected);
        assert_eq!(ids(&format!("{new}\n{old}\n")), expected);
        assert_eq!(ids(&new), expected[..1]);
        let set = KekSet::parse(&format!("{new},{old}")).unwrap();
        assert_eq!(set.current().id(), expected[0]);
    }

    #[test]
    fn bad_lists_are_refused_without_echoing_a_key() {
        let (a, b) = (text(), text());
        assert_eq!(
            KekSet::parse(" , ").unwrap_err(),
            "no key-encryption key given"
        );
        let err = KekSet::parse(&format!("{a},c2hvcnQ=")).unwrap_err();
        assert!(err.starts_with("entry 2 of 2: "), "{err}");
        assert!(err.contains("32 bytes"), "{err}");
        let err = KekSet::parse(&format!("{a},{b},{a}")).unwrap_err();
        assert!(
            err.contains("entry 3 of 3") && err.contains("listed twice"),
            "{err}"
        );
        assert!(!err.contains(&a), "{err}");
        assert!(
            KekSet::parse("c2hvcnQ=")
                .unwrap_err()
                .starts_with("the key")
        );
    }

    #[test]
    fn material_opens_only_under_the_kek_its_row_names() {
        let (a, b) = (text(), text());
        let set = KekSet::parse(&format!("{b},{a}")).unwrap();
        let old = Kek::from_base64(&a).unwrap();
        let sealed = old.seal("kid-1", b"private").unwrap();
        let what = "signing key kid-1";
        assert_eq!(
            set.open(old.id(), what, "kid-1", &sealed).unwrap(),
            b"private"
        );
        assert!(
            set.open(set.current().id(), what, "kid-1", &sealed)
                .is_err()
        );
        let only_b = KekSet::parse(&b).unwrap();
        let Error::Unexpected(err) = only_b.open(old.id(), what, "kid-1", &sealed).unwrap_err()
        else {
            panic!("not Unexpected");
        };
        let missing = err
            .downcast_ref::<KekNotConfigured>()
            .expect("KekNotConfigured");
        assert_eq!(missing.kek_id, old.id());
        let msg = err.to_string();
        assert!(
            msg.contains(&format!(
                "signing key kid-1 is sealed under KEK {}",
                old.id()
            )),
            "{msg}"
        );
        assert!(msg.contains(only_b.current().id()), "{msg}");
    }

    #[test]
    fn the_derived_mac_key_is_that_of_earlier_versions() {
        // HMAC-SHA256(kek, "tokend derived mac key v1"), computed outside tokend: what versions
        // before KEK rotation used, so it must never change.
        let kek = Kek::from_bytes(&[7u8; 32]).unwrap();
        let hex: String = kek
            .derived_mac_key()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "3186383851ed1bd7cead66347f4f3dd1a9262a16dfc4fa72cc1a9bf3712269a7"
        );
    }
}
