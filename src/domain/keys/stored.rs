//! Sealed material as it is kept: signing keys with their private half, and the other
//! secrets (the MAC key), each encrypted under the KEK its `kek_id` names.

use std::fmt;

/// One stored signing key. `private_key` is ciphertext under the KEK named by `kek_id`.
#[derive(Clone, PartialEq)]
pub struct StoredKey {
    pub kid: String,
    pub algorithm: String,
    pub public_jwk: String,
    pub private_key: Vec<u8>,
    pub kek_id: String,
    pub create_time_us: i64,
    pub activate_time_us: i64,
    pub retire_time_us: Option<i64>,
}

impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("kek_id", &self.kek_id)
            .finish_non_exhaustive()
    }
}

/// A secret other than a signing key (today only the MAC key), sealed under the KEK named by
/// `kek_id` like a signing key, so a KEK rotation re-seals it too.
#[derive(Clone, PartialEq)]
pub struct SealedSecret {
    pub name: String,
    pub sealed: Vec<u8>,
    pub kek_id: String,
    pub create_time_us: i64,
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSecret")
            .field("name", &self.name)
            .field("kek_id", &self.kek_id)
            .finish_non_exhaustive()
    }
}

/// What a KEK rotation changes in one sealed value: `name` (a signing key's kid, or a sealed
/// secret's name) held `old` and gets `new`, sealed under the rotation's KEK.
#[derive(Clone)]
pub struct Resealed {
    pub name: String,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
}

impl fmt::Debug for Resealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resealed")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
