//! Signing keys: generated on first start and by each rotation, stored with the private half
//! sealed under the key-encryption key (KEK), held in memory for signing and verification.
//!
//! - `kek`      — the KEKs that seal private keys at rest: the current one seals, previous
//!   ones (kept while a KEK rotation is rolled out) only open what they sealed.
//! - `mac`      — the MAC key for refresh successors, stored sealed so it outlives any KEK.
//! - `rekey`    — KEK rotation: everything stored re-sealed under the current KEK at once.
//! - `material` — algorithms (EdDSA, ES256, RS256), key generation, public JWKs.
//! - `ring`     — the in-memory key ring: which key signs and which verify, by the clock.
//! - `rotation` — listing and rotating keys (by hand or on a schedule); calls the store.
//! - `stored`   — sealed material as the store keeps it.
//!
//! A key's life: PENDING (published, signs nothing) from its creation to its activate time,
//! then ACTIVE (signs) until a newer key activates, then RETIRING (verifies, still published)
//! until its retire time, when every token it signed has expired, then RETIRED.

mod kek;
mod mac;
mod material;
mod rekey;
mod ring;
mod rotation;
mod stored;

pub use kek::{Kek, KekNotConfigured, KekSet};
pub use mac::MacKey;
pub use material::{PublicJwk, SigningAlgorithm};
pub use rekey::{KekRotation, rotate_kek};
pub use ring::{KeyRing, KeyState, KeyTimes};
pub use rotation::{JWKS_MAX_AGE, KeyAdmin, KeyInfo, KeyPolicy, MAX_PREPUBLISH, RotateOptions};
pub use stored::{Resealed, SealedSecret, StoredKey};

use crate::domain::error::Error;

fn unexpected(msg: &str) -> Error {
    Error::Unexpected(anyhow::anyhow!(msg.to_owned()))
}
