//! Opaque bearer strings: refresh tokens and opaque access tokens. 256 random bits behind a
//! recognisable prefix (so secret scanners find leaked ones), stored only as SHA-256: with that
//! much entropy a fast hash is enough, and a lookup by hash costs one index probe.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};

use crate::domain::error::{Error, Result};
use crate::domain::keys::MacKey;

const RANDOM_BYTES: usize = 32;
/// Length of the random part: 32 bytes in unpadded base64url.
const BODY_LEN: usize = 43;

/// Which kind of opaque string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpaqueKind {
    /// `tkd_rt_...`: a refresh token.
    Refresh,
    /// `tkd_at_...`: an opaque access token.
    Access,
}

impl OpaqueKind {
    /// The prefix every token of this kind starts with.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Refresh => "tkd_rt_",
            Self::Access => "tkd_at_",
        }
    }
}

/// An opaque token in the clear. `Debug` prints a redaction.
pub struct OpaqueToken {
    kind: OpaqueKind,
    text: SecretString,
}

impl fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpaqueToken({:?}, [redacted])", self.kind)
    }
}

impl OpaqueToken {
    /// A new random token.
    pub fn generate(kind: OpaqueKind) -> Result<Self> {
        let mut bytes = [0u8; RANDOM_BYTES];
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| Error::Unexpected(anyhow::anyhow!("system random source failed")))?;
        Ok(Self::from_bytes(kind, &bytes))
    }

    fn from_bytes(kind: OpaqueKind, bytes: &[u8; RANDOM_BYTES]) -> Self {
        let text = format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(bytes));
        Self {
            kind,
            text: SecretString::from(text),
        }
    }

    /// Recognises a presented string; `None` when it cannot be a token of `kind`.
    pub fn from_presented(kind: OpaqueKind, raw: &str) -> Option<Self> {
        let body = raw.strip_prefix(kind.prefix())?;
        let well_formed = body.len() == BODY_LEN
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self {
            kind,
            text: SecretString::from(raw.to_owned()),
        })
    }

    /// The refresh token that replaces this one when it is exchanged. Derived, not random, so
    /// that a client whose response was lost gets the same successor again when it retries
    /// within the retry window, without tokend ever storing a token in the clear. Computing it
    /// needs the deployment's MAC key and this token. The MAC key is stored, not derived from
    /// the KEK, so every replica computes the same successor, whatever KEK it has first.
    pub fn successor(&self, mac: &MacKey) -> Self {
        let mut input = b"tokend refresh successor v1\n".to_vec();
        input.extend_from_slice(self.expose().as_bytes());
        Self::from_bytes(self.kind, &mac.mac(&input))
    }

    /// What the store keeps: SHA-256 of the token, hex.
    pub fn hash(&self) -> String {
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.expose().as_bytes());
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The token itself, for the response that hands it out.
    pub fn expose(&self) -> &str {
        self.text.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_and_recognition() {
        let t = OpaqueToken::generate(OpaqueKind::Refresh).unwrap();
        assert!(t.expose().starts_with("tkd_rt_"));
        assert_eq!(t.expose().len(), 7 + BODY_LEN);
        assert!(OpaqueToken::from_presented(OpaqueKind::Refresh, t.expose()).is_some());
        assert!(OpaqueToken::from_presented(OpaqueKind::Access, t.expose()).is_none());
        assert!(OpaqueToken::from_presented(OpaqueKind::Refresh, "tkd_rt_short").is_none());
        let bad = format!("tkd_rt_{}", "!".repeat(BODY_LEN));
        assert!(OpaqueToken::from_presented(OpaqueKind::Refresh, &bad).is_none());
        assert_eq!(t.hash().len(), 64);
        assert!(!format!("{t:?}").contains(t.expose()));
    }

    #[test]
    fn successors_are_deterministic_per_mac_key_and_token() {
        let (key, other) = (MacKey::random(), MacKey::random());
        let t = OpaqueToken::generate(OpaqueKind::Refresh).unwrap();
        let next = t.successor(&key);
        assert_eq!(next.expose(), t.successor(&key).expose());
        assert_ne!(next.expose(), t.successor(&other).expose());
        assert_ne!(next.expose(), t.expose());
        assert!(OpaqueToken::from_presented(OpaqueKind::Refresh, next.expose()).is_some());
        assert_ne!(next.successor(&key).expose(), next.expose());
    }

    #[test]
    fn successors_are_those_earlier_versions_derived() {
        // The MAC key a database from before KEK rotation adopts is HMAC-SHA256(KEK, "tokend
        // derived mac key v1"); for the KEK of 32 bytes 0x07 that is the key below. The expected
        // successor was computed outside tokend, as those versions did: a retry across the
        // upgrade must get the same one.
        let hex = "3186383851ed1bd7cead66347f4f3dd1a9262a16dfc4fa72cc1a9bf3712269a7";
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let key = MacKey::from_test_bytes(&bytes.try_into().unwrap());
        let t =
            OpaqueToken::from_presented(OpaqueKind::Refresh, &format!("tkd_rt_{}", "A".repeat(43)))
                .unwrap();
        assert_eq!(
            t.successor(&key).expose(),
            "tkd_rt_t9hY5NALINnJ_WIMQrQfbpDBoZngbzAcOhjG2hBX_GM"
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn kind() -> impl Strategy<Value = OpaqueKind> {
        prop_oneof![Just(OpaqueKind::Refresh), Just(OpaqueKind::Access)]
    }

    fn other(kind: OpaqueKind) -> OpaqueKind {
        match kind {
            OpaqueKind::Refresh => OpaqueKind::Access,
            OpaqueKind::Access => OpaqueKind::Refresh,
        }
    }

    proptest! {
        #[test]
        fn minted_tokens_are_recognised_as_their_own_kind_only(
            kind in kind(),
            bytes in any::<[u8; RANDOM_BYTES]>(),
        ) {
            let minted = OpaqueToken::from_bytes(kind, &bytes);
            let presented = OpaqueToken::from_presented(kind, minted.expose()).unwrap();
            prop_assert_eq!(presented.hash(), minted.hash());
            prop_assert!(OpaqueToken::from_presented(other(kind), minted.expose()).is_none());
        }

        #[test]
        fn a_character_outside_base64url_is_refused(
            kind in kind(),
            bytes in any::<[u8; RANDOM_BYTES]>(),
            at in 0..BODY_LEN,
            bad in r"[^A-Za-z0-9_-]",
        ) {
            let minted = OpaqueToken::from_bytes(kind, &bytes);
            let mut chars: Vec<char> = minted.expose().chars().collect();
            chars[kind.prefix().len() + at] = bad.chars().next().unwrap();
            let text: String = chars.into_iter().collect();
            prop_assert!(OpaqueToken::from_presented(kind, &text).is_none());
        }

        #[test]
        fn arbitrary_strings_never_panic_and_only_the_shape_is_accepted(
            kind in kind(),
            raw in prop_oneof![any::<String>(), r"tkd_(rt|at)_[A-Za-z0-9_-]{40,46}"],
        ) {
            if OpaqueToken::from_presented(kind, &raw).is_some() {
                prop_assert!(raw.starts_with(kind.prefix()));
                prop_assert_eq!(raw.len(), kind.prefix().len() + BODY_LEN);
            }
        }
    }
}
