//! KEK rotation (`tokend kek rotate`): every stored signing key, retired ones included, and
//! every sealed secret (the MAC key) re-sealed under the current KEK in one transaction, after
//! which the previous KEKs can leave the configuration. Running it again changes nothing.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::kek::KekSet;
use super::mac::MacKey;
use super::stored::{Resealed, SealedSecret, StoredKey};
use crate::domain::audit::{self, AuditEvent, AuditKind, CLI_ACTOR};
use crate::domain::clock::Clock;
use crate::domain::error::{Error, Result};
use crate::store::KeyStore;

/// Reads before giving up when other writers keep changing the keys in between.
const ATTEMPTS: usize = 5;

/// What a KEK rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekRotation {
    /// The KEK everything stored is now sealed under: the current one.
    pub kek_id: String,
    /// Signing keys this run re-sealed.
    pub signing_keys: usize,
    /// Other sealed secrets (the MAC key) this run re-sealed.
    pub secrets: usize,
    /// Items that were sealed under the current KEK already.
    pub already_current: usize,
    /// The KEKs the re-sealed items were under, which the configuration may now drop.
    pub from_kek_ids: Vec<String>,
}

/// Re-seals everything stored under the current KEK. The write takes the lock signing-key
/// rotations take and only commits if nothing is left under another KEK, so a key a replica
/// adds meanwhile (under an old KEK, if that replica still has it first) is never missed: the
/// rotation reads again and retries. A failed decryption changes nothing.
#[tracing::instrument(skip_all, fields(kek_id = %keks.current().id()))]
pub async fn rotate_kek(
    store: &dyn KeyStore,
    keks: &KekSet,
    clock: &Arc<dyn Clock>,
) -> Result<KekRotation> {
    // A database no replica of this version opened yet gets its MAC key now, derived from
    // the KEK that sealed its keys, before they move away from it.
    MacKey::load_or_create(store, keks, clock).await?;
    for _ in 0..ATTEMPTS {
        let keys = store.list_keys().await?;
        let secrets = store.list_sealed_secrets().await?;
        let plan = Plan::of(keks, &keys, &secrets)?;
        let events = plan.events(clock.as_ref());
        let kek_id = &plan.summary.kek_id;
        if store
            .reseal(&plan.keys, &plan.secrets, kek_id, &events)
            .await?
        {
            audit::log_all(&events);
            tracing::info!(
                signing_keys = plan.summary.signing_keys,
                secrets = plan.summary.secrets,
                from = ?plan.summary.from_kek_ids,
                "re-sealed the stored keys under the current KEK"
            );
            return Ok(plan.summary);
        }
        tracing::info!("the stored keys changed during the KEK rotation; reading them again");
    }
    Err(Error::Aborted(
        "the stored keys kept changing during the KEK rotation; run it again".into(),
    ))
}

/// The writes of one attempt, and what it reports.
struct Plan {
    keys: Vec<Resealed>,
    secrets: Vec<Resealed>,
    summary: KekRotation,
}

impl Plan {
    fn of(keks: &KekSet, keys: &[StoredKey], secrets: &[SealedSecret]) -> Result<Self> {
        let current = keks.current();
        let mut from = BTreeSet::new();
        let mut reseal = |kek_id: &str, what: String, aad: &str, sealed: &[u8]| {
            let plain = keks.open(kek_id, &what, aad, sealed)?;
            from.insert(kek_id.to_owned());
            Ok::<_, Error>(Resealed {
                name: aad.to_owned(),
                old: sealed.to_vec(),
                new: current.seal(aad, &plain)?,
            })
        };
        let resealed_keys: Vec<Resealed> = keys
            .iter()
            .filter(|k| k.kek_id != current.id())
            .map(|k| {
                reseal(
                    &k.kek_id,
                    format!("signing key {}", k.kid),
                    &k.kid,
                    &k.private_key,
                )
            })
            .collect::<Result<_>>()?;
        let resealed_secrets: Vec<Resealed> = secrets
            .iter()
            .filter(|s| s.kek_id != current.id())
            .map(|s| {
                reseal(
                    &s.kek_id,
                    format!("sealed secret {}", s.name),
                    &s.name,
                    &s.sealed,
                )
            })
            .collect::<Result<_>>()?;
        let moved = resealed_keys.len() + resealed_secrets.len();
        let summary = KekRotation {
            kek_id: current.id().to_owned(),
            signing_keys: resealed_keys.len(),
            secrets: resealed_secrets.len(),
            already_current: keys.len() + secrets.len() - moved,
            from_kek_ids: from.into_iter().collect(),
        };
        Ok(Self {
            keys: resealed_keys,
            secrets: resealed_secrets,
            summary,
        })
    }

    /// The audit event, when this attempt re-seals anything.
    fn events(&self, clock: &dyn Clock) -> Vec<AuditEvent> {
        let s = &self.summary;
        if s.signing_keys + s.secrets == 0 {
            return Vec::new();
        }
        let mut event = AuditEvent::new(AuditKind::KekRotated, clock.now())
            .with("kek_id", s.kek_id.clone())
            .with("from_kek_ids", s.from_kek_ids.join(","))
            .with("reencrypted", (s.signing_keys + s.secrets).to_string());
        event.actor = CLI_ACTOR.to_owned();
        vec![event]
    }
}
