//! Key administration: listing the signing keys and rotating them, by hand (`KeyService`) or
//! on a schedule, with pre-publication (a new key is published before it signs) and a grace
//! period (a superseded key verifies until every token it signed has expired).

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::material::SigningAlgorithm;
use super::ring::{KeyRing, KeyState, KeyTimes, signer, states};
use super::stored::StoredKey;
use crate::domain::audit::{self, AuditEvent, AuditKind, SYSTEM_ACTOR};
use crate::domain::clients::MAX_ACCESS_TTL;
use crate::domain::clock::{Clock, from_micros, to_micros};
use crate::domain::error::{Error, Result};
use crate::domain::introspection::caller::Caller;
use crate::domain::scope::ADMIN_SCOPE;
use crate::store::Store;

/// Longest pre-publication a rotation may ask for.
pub const MAX_PREPUBLISH: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long verifiers may cache the published key set (the JWKS's `max-age`). Keys are
/// published before they sign; the pre-publication window (`keys.prepublish_secs`) must stay
/// longer than this (the config checks it), so a cached set always holds the key of any token
/// a verifier sees.
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(300);

/// When keys rotate.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    /// How long a new key is published before it signs, unless a rotation says otherwise.
    pub prepublish: Duration,
    /// Rotate automatically when the newest key is older than this; `None`: only by hand.
    pub rotation_interval: Option<Duration>,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        Self {
            prepublish: Duration::from_secs(600),
            rotation_interval: Some(Duration::from_secs(30 * 24 * 3600)),
        }
    }
}

/// What an admin asks of a rotation.
#[derive(Debug, Clone, Copy, Default)]
pub struct RotateOptions {
    /// Pre-publication of the new key; `None`: the configured default; zero: signs at once.
    pub prepublish: Option<Duration>,
    /// Retire every previous key now (key compromise): their tokens stop being active at once
    /// and the new key signs at once.
    pub retire_previous: bool,
}

/// A stored key as `ListSigningKeys` shows it: never private material.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub kid: String,
    pub algorithm: String,
    pub state: KeyState,
    pub times: KeyTimes,
    /// The public JWK, as JSON.
    pub public_jwk: String,
}

/// Lists and rotates signing keys; keeps this replica's key ring current.
pub struct KeyAdmin {
    pub(in crate::domain) store: Arc<dyn Store>,
    pub(in crate::domain) keys: Arc<KeyRing>,
    pub(in crate::domain) clock: Arc<dyn Clock>,
    /// Algorithm of new keys; an algorithm change takes effect at the next rotation.
    pub(in crate::domain) algorithm: SigningAlgorithm,
    pub(in crate::domain) policy: KeyPolicy,
    /// Clock skew tolerated on `exp`, added to a superseded key's grace period.
    pub(in crate::domain) leeway: Duration,
}

impl KeyAdmin {
    /// Every stored key, newest first, with its state now.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<KeyInfo>> {
        require_system_admin(caller)?;
        let rows = self.store.list_keys().await?;
        Ok(infos(&rows, self.clock.now()))
    }

    /// Adds a new signing key and schedules the retirement of the previous ones; returns the
    /// new key. Aborted when another rotation (an admin's, or another replica's automatic one)
    /// got there first.
    #[tracing::instrument(skip_all, fields(caller = %caller.client_id))]
    pub async fn rotate(&self, caller: &Caller, options: RotateOptions) -> Result<KeyInfo> {
        require_system_admin(caller)?;
        let prepublish = match options.prepublish {
            Some(p) if p > MAX_PREPUBLISH => {
                return Err(Error::invalid(
                    "prepublish",
                    format!("must be at most {}s", MAX_PREPUBLISH.as_secs()),
                ));
            }
            Some(p) if options.retire_previous && !p.is_zero() => {
                return Err(Error::invalid(
                    "prepublish",
                    "must be unset or zero with retire_previous: the previous keys stop \
                     verifying at once, so the new key must sign at once",
                ));
            }
            Some(p) => p,
            None if options.retire_previous => Duration::ZERO,
            None => self.policy.prepublish,
        };
        let rows = self.store.list_keys().await?;
        let Some(new) = self
            .rotate_after(&rows, prepublish, options.retire_previous, Some(caller))
            .await?
        else {
            return Err(Error::Aborted(
                "another rotation happened at the same time; list the keys and retry if still needed"
                    .into(),
            ));
        };
        let rows = self.store.list_keys().await?;
        infos(&rows, self.clock.now())
            .into_iter()
            .find(|k| k.kid == new.kid)
            .ok_or_else(|| Error::Unexpected(anyhow::anyhow!("the new key vanished")))
    }

    /// Rereads the stored keys into this replica's ring (rotations made elsewhere).
    pub async fn reload(&self) -> Result<()> {
        self.keys.reload(self.store.as_ref()).await
    }

    /// The periodic task: rotates if the newest key is older than the rotation interval (only
    /// one replica succeeds), then reloads.
    pub async fn maintain(&self) -> Result<()> {
        if let Some(interval) = self.policy.rotation_interval {
            let rows = self.store.list_keys().await?;
            let due = rows
                .first()
                .is_some_and(|newest| from_micros(newest.create_time_us) + interval <= self.now());
            if due {
                self.rotate_after(&rows, self.policy.prepublish, false, None)
                    .await?;
            }
        }
        self.reload().await
    }

    /// Stores a new key superseding `rows` (the keys as just read, newest first) and reloads
    /// the ring. `None` when `rows` is no longer current: another rotation won. `caller` is
    /// the admin who asked, `None` for the scheduled rotation (recorded as tokend's own).
    async fn rotate_after(
        &self,
        rows: &[StoredKey],
        prepublish: Duration,
        retire_previous: bool,
        caller: Option<&Caller>,
    ) -> Result<Option<StoredKey>> {
        let newest = rows
            .first()
            .ok_or_else(|| Error::Unexpected(anyhow::anyhow!("no signing key is stored")))?;
        let now = self.now();
        let activate = now + prepublish;
        let row = self.keys.new_row(self.algorithm, now, activate).await?;
        let grace = MAX_ACCESS_TTL + self.leeway;
        let retire = retirements(rows, now, activate + grace, retire_previous);
        let mut event = match caller {
            Some(caller) => {
                AuditEvent::by_caller(AuditKind::SigningKeyRotated, caller, "", "", now)
            }
            None => {
                let mut e = AuditEvent::new(AuditKind::SigningKeyRotated, now);
                e.actor = SYSTEM_ACTOR.to_owned();
                e
            }
        };
        event = event
            .with("kid", row.kid.clone())
            .with("retire_previous", retire_previous.to_string());
        let events = [event];
        if !self
            .store
            .insert_rotated_key(&row, &newest.kid, &retire, &events)
            .await?
        {
            tracing::info!("another replica rotated the signing key first");
            self.reload().await?;
            return Ok(None);
        }
        audit::log_all(&events);
        tracing::info!(
            kid = %row.kid,
            algorithm = %row.algorithm,
            prepublish_secs = prepublish.as_secs(),
            retire_previous,
            "rotated the signing key"
        );
        self.reload().await?;
        Ok(Some(row))
    }

    /// Now, at the store's precision, so what a call returns equals what a later read returns.
    fn now(&self) -> OffsetDateTime {
        from_micros(to_micros(self.clock.now()))
    }
}

/// Key administration is for tokend's operators: scope `tokend.admin` in tenant `system`. A
/// tenant's admin must not be able to make every tenant's tokens inactive.
fn require_system_admin(caller: &Caller) -> Result<()> {
    caller.require_scope(ADMIN_SCOPE)?;
    if caller.tenant.is_system() {
        Ok(())
    } else {
        Err(Error::PermissionDenied(format!(
            "signing keys are managed by admins of tenant system, not of tenant {}",
            caller.tenant
        )))
    }
}

fn infos(rows: &[StoredKey], now: OffsetDateTime) -> Vec<KeyInfo> {
    let times: Vec<KeyTimes> = rows.iter().map(KeyTimes::of).collect();
    rows.iter()
        .zip(times.iter().zip(states(&times, now)))
        .map(|(row, (times, state))| KeyInfo {
            kid: row.kid.clone(),
            algorithm: row.algorithm.clone(),
            state,
            times: *times,
            public_jwk: row.public_jwk.clone(),
        })
        .collect()
}

/// New retire times (kid, microseconds) for the stored keys when a rotation happens at `now`:
/// - with `retire_previous`, every live key retires now;
/// - the key signing now retires at `signer_retire` (the new key's activation plus the longest
///   token lifetime plus leeway): by then every token it signed has expired;
/// - a key still pending retires now: it never signed, and the new key supersedes it;
/// - keys already superseded keep their retire times.
fn retirements(
    rows: &[StoredKey],
    now: OffsetDateTime,
    signer_retire: OffsetDateTime,
    retire_previous: bool,
) -> Vec<(String, i64)> {
    let times: Vec<KeyTimes> = rows.iter().map(KeyTimes::of).collect();
    let signing = signer(&times, now);
    rows.iter()
        .zip(&times)
        .enumerate()
        .filter(|(_, (_, t))| !t.is_retired(now))
        .filter_map(|(i, (row, t))| {
            let at = if retire_previous || (Some(i) != signing && t.activate > now) {
                now
            } else if Some(i) == signing {
                signer_retire
            } else {
                return None;
            };
            Some((row.kid.clone(), to_micros(at)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kid: &str, create: i64, activate: i64, retire: Option<i64>) -> StoredKey {
        StoredKey {
            kid: kid.into(),
            algorithm: "EdDSA".into(),
            public_jwk: "{}".into(),
            private_key: vec![],
            kek_id: "kek".into(),
            create_time_us: create * 1_000_000,
            activate_time_us: activate * 1_000_000,
            retire_time_us: retire.map(|r| r * 1_000_000),
        }
    }

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    fn secs(v: Vec<(String, i64)>) -> Vec<(String, i64)> {
        v.into_iter().map(|(k, us)| (k, us / 1_000_000)).collect()
    }

    #[test]
    fn the_signer_retires_after_the_grace_and_old_keys_keep_theirs() {
        let rows = [
            row("b", 100, 100, None),
            row("a", 0, 0, Some(5000)),
            row("z", 0, 0, Some(50)),
        ];
        assert_eq!(
            secs(retirements(&rows, at(200), at(9000), false)),
            [("b".to_owned(), 9000)]
        );
    }

    #[test]
    fn a_pending_key_is_superseded_at_once() {
        let rows = [row("c", 200, 800, None), row("b", 100, 100, Some(90_000))];
        // b keeps signing until the new key activates, so its retirement moves with it.
        assert_eq!(
            secs(retirements(&rows, at(300), at(99_000), false)),
            [("c".to_owned(), 300), ("b".to_owned(), 99_000)]
        );
    }

    #[test]
    fn retire_previous_retires_every_live_key_now() {
        let rows = [
            row("c", 200, 800, None),
            row("b", 100, 100, Some(90_000)),
            row("a", 0, 0, Some(1)),
        ];
        assert_eq!(
            secs(retirements(&rows, at(300), at(99_000), true)),
            [("c".to_owned(), 300), ("b".to_owned(), 300)]
        );
    }
}
