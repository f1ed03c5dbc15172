//! The MAC key: HMAC-SHA256 for values only tokend can compute, today a refresh token's
//! successor (`OpaqueToken::successor`). A client whose refresh response was lost presents the
//! spent token again within the retry window and must get the same successor, from whichever
//! replica answers; a different one looks like reuse and revokes the family. So the key must be
//! the same on every replica and must not change when the KEK does.
//!
//! It is therefore not derived from the KEK (replicas disagree on the current KEK while one is
//! being rolled out, and the KEK changes afterwards) but stored, sealed under the KEK like a
//! signing key, in `sealed_secrets`: `tokend kek rotate` re-seals it, its value never changes.
//! A new database gets a random one. A database created before KEKs could rotate adopts the
//! key those versions derived from their one KEK ([`Kek::derived_mac_key`]), so during the
//! upgrade old and new replicas still agree.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::hmac;

use super::kek::KekSet;
use super::stored::SealedSecret;
use super::unexpected;
use crate::domain::clock::{Clock, to_micros};
use crate::domain::error::Result;
use crate::store::KeyStore;

/// The name of the MAC key's row in `sealed_secrets`, also its associated data when sealed
/// (kids are hex, so it cannot be confused with a signing key).
pub(super) const MAC_KEY: &str = "mac_key";

/// The deployment's HMAC-SHA256 key for values only the server can compute. `Debug` prints
/// nothing of it.
pub struct MacKey {
    key: hmac::Key,
}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacKey([redacted])")
    }
}

impl MacKey {
    fn from_bytes(bytes: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    /// A random key (tests).
    #[cfg(test)]
    pub(crate) fn random() -> Self {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).unwrap();
        Self::from_bytes(&bytes)
    }

    /// A key from given bytes (tests that pin a value).
    #[cfg(test)]
    pub(crate) fn from_test_bytes(bytes: &[u8; 32]) -> Self {
        Self::from_bytes(bytes)
    }

    /// HMAC-SHA256 of `data`: deterministic, and unguessable without the key.
    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        let tag = hmac::sign(&self.key, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// The stored MAC key, opened with the KEK its row names; on a database without one, first
    /// stores one (the first of several replicas starting at once wins; all use the winner's).
    pub async fn load_or_create(
        store: &dyn KeyStore,
        keks: &KekSet,
        clock: &Arc<dyn Clock>,
    ) -> Result<Self> {
        if store.get_sealed_secret(MAC_KEY).await?.is_none() {
            let bytes = initial_value(store, keks).await?;
            let row = SealedSecret {
                name: MAC_KEY.to_owned(),
                sealed: keks.current().seal(MAC_KEY, &bytes)?,
                kek_id: keks.current().id().to_owned(),
                create_time_us: to_micros(clock.now()),
            };
            if store.insert_sealed_secret(&row).await? {
                tracing::info!(kek_id = %row.kek_id, "stored the MAC key");
            }
        }
        let row = store
            .get_sealed_secret(MAC_KEY)
            .await?
            .ok_or_else(|| unexpected("the stored MAC key vanished"))?;
        let bytes = keks.open(&row.kek_id, "the MAC key", MAC_KEY, &row.sealed)?;
        if bytes.len() != 32 {
            return Err(unexpected("the stored MAC key is not 32 bytes"));
        }
        Ok(Self::from_bytes(&bytes))
    }
}

/// The MAC key of a database that has none yet: the key earlier versions derived from the KEK
/// that sealed its signing keys, or random for a new database.
async fn initial_value(store: &dyn KeyStore, keks: &KekSet) -> Result<Vec<u8>> {
    if let Some(newest) = store.list_keys().await?.first() {
        let what = format!("signing key {}", newest.kid);
        let kek = keks.require(&newest.kek_id, &what)?;
        return Ok(kek.derived_mac_key().to_vec());
    }
    let mut bytes = vec![0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| unexpected("system random source failed"))?;
    Ok(bytes)
}
