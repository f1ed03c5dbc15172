//! The key ring: the keys this replica signs and verifies with, as an `Arc` snapshot swapped on
//! reload. Which key signs and which keys verify is decided from the clock at call time, so an
//! activation or a retirement happens on time without touching the database.

use std::sync::{Arc, RwLock};

use time::OffsetDateTime;

use super::kek::KekSet;
use super::material::{PublicJwk, SigningAlgorithm, SigningKey, generate_pkcs8};
use super::stored::StoredKey;
use super::unexpected;
use crate::domain::clock::{Clock, from_micros, to_micros};
use crate::domain::error::{Error, Result};
use crate::store::KeyStore;

/// Where a key is in its life at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, but signs nothing until its activate time.
    Pending,
    /// The key that signs new tokens now.
    Active,
    /// Superseded: signs nothing new, but is published and verifies until its retire time,
    /// by which every token it signed has expired.
    Retiring,
    /// Past its retire time: unpublished, and tokens it signed are no longer active.
    Retired,
}

/// A key's lifecycle times, at the store's precision (microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTimes {
    pub create: OffsetDateTime,
    pub activate: OffsetDateTime,
    pub retire: Option<OffsetDateTime>,
}

impl KeyTimes {
    pub(super) fn of(row: &StoredKey) -> Self {
        Self {
            create: from_micros(row.create_time_us),
            activate: from_micros(row.activate_time_us),
            retire: row.retire_time_us.map(from_micros),
        }
    }

    /// Whether the key is past its retire time at `now`.
    pub fn is_retired(&self, now: OffsetDateTime) -> bool {
        self.retire.is_some_and(|t| t <= now)
    }
}

/// The index of the key that signs at `now`, in `times` ordered newest first: the
/// latest-activated live key whose activate time has come (on a tie, the newer key: a rotation
/// that activates at once may share its instant with the previous one). Should none have come yet (only reachable through odd clocks or data), the
/// live key activating soonest signs: it is published already, so its tokens verify. `None`
/// only when every key is retired.
pub(super) fn signer(times: &[KeyTimes], now: OffsetDateTime) -> Option<usize> {
    let live = || {
        times
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, t)| !t.is_retired(now))
    };
    live()
        .filter(|(_, t)| t.activate <= now)
        .max_by_key(|(_, t)| (t.activate, t.create))
        .or_else(|| live().min_by_key(|(_, t)| (t.activate, t.create)))
        .map(|(i, _)| i)
}

/// The state of each key at `now`, in the order given.
pub(super) fn states(times: &[KeyTimes], now: OffsetDateTime) -> Vec<KeyState> {
    let signer = signer(times, now);
    times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if Some(i) == signer {
                KeyState::Active
            } else if t.is_retired(now) {
                KeyState::Retired
            } else if t.activate > now {
                KeyState::Pending
            } else {
                KeyState::Retiring
            }
        })
        .collect()
}

/// One snapshot: the live keys (not retired when it was loaded), newest first.
#[derive(Debug, Default)]
struct KeySet {
    keys: Vec<Arc<SigningKey>>,
    times: Vec<KeyTimes>,
}

/// The keys this replica signs and verifies with.
pub struct KeyRing {
    keks: Arc<KekSet>,
    clock: Arc<dyn Clock>,
    current: RwLock<Arc<KeySet>>,
    /// Serialises reloads, so a slow one can never install an older set over a newer one.
    reloading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("kids", &self.kids())
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Loads every stored key; if there is none yet, generates one of `algorithm` first (only
    /// one replica wins when several start at once; the others load the winner's key).
    pub async fn load_or_create(
        store: &dyn KeyStore,
        keks: Arc<KekSet>,
        algorithm: SigningAlgorithm,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let ring = Self {
            keks,
            clock,
            current: RwLock::new(Arc::default()),
            reloading: tokio::sync::Mutex::new(()),
        };
        let mut rows = store.list_keys().await?;
        if rows.is_empty() {
            let now = ring.clock.now();
            let row = ring.new_row(algorithm, now, now).await?;
            if store.insert_first_key(&row).await? {
                tracing::info!(kid = %row.kid, algorithm = algorithm.name(), "generated the first signing key");
            }
            rows = store.list_keys().await?;
        }
        ring.apply(&rows)?;
        Ok(ring)
    }

    /// Reads the stored keys again and installs them. Cheap when nothing changed (one query,
    /// no decryption); keys already held are reused, so only new keys are decrypted. On error
    /// the previous keys stay in use.
    pub async fn reload(&self, store: &dyn KeyStore) -> Result<()> {
        let _one_at_a_time = self.reloading.lock().await;
        let rows = store.list_keys().await?;
        self.apply(&rows)
    }

    /// Installs `rows` (newest first), skipping keys already retired.
    fn apply(&self, rows: &[StoredKey]) -> Result<()> {
        let now = self.clock.now();
        let live: Vec<&StoredKey> = rows
            .iter()
            .filter(|r| !KeyTimes::of(r).is_retired(now))
            .collect();
        let old = self.snapshot();
        let unchanged = live.len() == old.keys.len()
            && live
                .iter()
                .zip(old.keys.iter().zip(&old.times))
                .all(|(row, (key, times))| row.kid == key.kid && KeyTimes::of(row) == *times);
        if unchanged {
            return Ok(());
        }
        if live.is_empty() {
            return Err(unexpected(
                "every stored signing key is retired; tokend cannot sign",
            ));
        }
        let mut next = KeySet::default();
        for row in live {
            let held = old.keys.iter().find(|k| k.kid == row.kid).cloned();
            let key = match held {
                Some(key) => key,
                None => Arc::new(self.open_row(row)?),
            };
            next.keys.push(key);
            next.times.push(KeyTimes::of(row));
        }
        tracing::info!(kids = ?next.keys.iter().map(|k| &k.kid).collect::<Vec<_>>(), "signing keys loaded");
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        Ok(())
    }

    /// A new key of `algorithm`, sealed under the current KEK, as a row to store. Generation
    /// runs on the blocking pool (an RSA key costs tens of milliseconds of CPU).
    pub(super) async fn new_row(
        &self,
        algorithm: SigningAlgorithm,
        create: OffsetDateTime,
        activate: OffsetDateTime,
    ) -> Result<StoredKey> {
        let keks = self.keks.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let kid = uuid::Uuid::now_v7().simple().to_string();
            let pkcs8 = generate_pkcs8(algorithm)?;
            let key = SigningKey::from_pkcs8(&kid, algorithm, &pkcs8)?;
            let public_jwk =
                serde_json::to_string(&key.jwk).map_err(|e| Error::Unexpected(e.into()))?;
            let kek = keks.current();
            Ok(StoredKey {
                private_key: kek.seal(&kid, &pkcs8)?,
                kid,
                algorithm: algorithm.name().to_owned(),
                public_jwk,
                kek_id: kek.id().to_owned(),
                create_time_us: to_micros(create),
                activate_time_us: to_micros(activate),
                retire_time_us: None,
            })
        })
        .await
        .map_err(|e| Error::Unexpected(e.into()))?
    }

    /// Opens a stored key with the KEK its row names (the current one or a previous one).
    fn open_row(&self, row: &StoredKey) -> Result<SigningKey> {
        let algorithm = SigningAlgorithm::parse(&row.algorithm).map_err(|e| unexpected(&e))?;
        let what = format!("signing key {}", row.kid);
        let pkcs8 = self
            .keks
            .open(&row.kek_id, &what, &row.kid, &row.private_key)?;
        SigningKey::from_pkcs8(&row.kid, algorithm, &pkcs8)
    }

    fn snapshot(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn kids(&self) -> Vec<String> {
        self.snapshot().keys.iter().map(|k| k.kid.clone()).collect()
    }

    /// The key new tokens are signed with now.
    pub fn signing_key(&self) -> Arc<SigningKey> {
        let set = self.snapshot();
        match signer(&set.times, self.clock.now()) {
            Some(i) => set.keys[i].clone(),
            // Every key retired since the last reload: unreachable through the API, which
            // always leaves a live key. Sign with the newest (a set is never empty, see
            // `apply`); such tokens introspect inactive rather than failing the call.
            None => {
                tracing::error!("every signing key is retired; rotate the signing key");
                set.keys[0].clone()
            }
        }
    }

    /// The key with this id, if it may verify tokens now: pending, active or retiring, the
    /// same keys [`KeyRing::jwks`] publishes.
    pub fn verifying_key(&self, kid: &str) -> Option<Arc<SigningKey>> {
        let set = self.snapshot();
        let now = self.clock.now();
        let i = set.keys.iter().position(|k| k.kid == kid)?;
        (!set.times[i].is_retired(now)).then(|| set.keys[i].clone())
    }

    /// Whether the key with this id may verify tokens now (as [`KeyRing::verifying_key`]).
    pub fn may_verify(&self, kid: &str) -> bool {
        let now = self.clock.now();
        // Under the read lock rather than a snapshot: no reference count to bounce between
        // cores on this hot path.
        let set = self.current.read().unwrap_or_else(|e| e.into_inner());
        set.keys
            .iter()
            .position(|k| k.kid == kid)
            .is_some_and(|i| !set.times[i].is_retired(now))
    }

    /// The state now of each key this replica holds, newest first (for metrics).
    pub fn states_now(&self) -> Vec<KeyState> {
        states(&self.snapshot().times, self.clock.now())
    }

    /// Public keys to publish now (pending, active and retiring), newest first.
    pub fn jwks(&self) -> Vec<PublicJwk> {
        let set = self.snapshot();
        let now = self.clock.now();
        set.keys
            .iter()
            .zip(&set.times)
            .filter(|(_, t)| !t.is_retired(now))
            .map(|(k, _)| k.jwk.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    fn times(create: i64, activate: i64, retire: Option<i64>) -> KeyTimes {
        KeyTimes {
            create: at(create),
            activate: at(activate),
            retire: retire.map(at),
        }
    }

    #[test]
    fn states_follow_the_clock() {
        use KeyState::*;
        // Newest first: a pending key, the active one, one retiring, one retired.
        let keys = [
            times(300, 900, None),
            times(200, 200, Some(1000)),
            times(100, 100, Some(500)),
            times(0, 0, Some(150)),
        ];
        assert_eq!(states(&keys, at(400)), [Pending, Active, Retiring, Retired]);
        assert_eq!(states(&keys, at(900)), [Active, Retiring, Retired, Retired]);
        assert_eq!(states(&keys, at(1000)), [Active, Retired, Retired, Retired]);
    }

    #[test]
    fn of_two_keys_activating_at_once_the_newer_signs() {
        let keys = [times(0, 0, None), times(0, 0, Some(86_400))];
        assert_eq!(signer(&keys, at(0)), Some(0));
    }

    #[test]
    fn a_pending_key_signs_only_when_nothing_else_can() {
        let keys = [times(10, 50, None), times(0, 0, Some(5))];
        assert_eq!(signer(&keys, at(10)), Some(0));
        let retired = [times(0, 0, Some(5))];
        assert_eq!(signer(&retired, at(10)), None);
    }
}
