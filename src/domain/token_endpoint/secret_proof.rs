//! The verifier of client secrets (`Proof::Secret`): one argon2id verification per attempt,
//! on a hashing thread, or none for a secret this replica verified recently.

use std::sync::Arc;

use super::service::TokenEndpoint;
use secrecy::ExposeSecret as _;

use super::client_auth::{ClientAuth, Proof};
use crate::domain::clients::Client;
use crate::domain::clients::secret::ClientSecret;
use crate::domain::clock::to_micros;
use crate::domain::error::{Error, Result};
use crate::domain::ids::ClientId;

/// Asked on a hashing thread just before argon2 runs: `true` means "do not".
pub(super) type HashGate = Box<dyn FnOnce() -> bool + Send + 'static>;

impl TokenEndpoint {
    /// Checks a client's proof, with no policy (front ends go through
    /// [`TokenEndpoint::grant`], whose gate applies it): for benchmarks and tools.
    pub async fn authenticate(&self, who: &ClientAuth) -> Result<Arc<Client>> {
        let verified = match &who.proof {
            Proof::Secret(secret) => {
                self.verify_secret(&who.client_id, secret.expose_secret(), None)
                    .await?
            }
            Proof::Assertion(assertion) => {
                let (client, _method) = self.verify_assertion(&who.client_id, assertion).await?;
                return Ok(client);
            }
            Proof::Certificate(cert) => {
                let (client, _method) = self.verify_certificate(&who.client_id, cert).await?;
                return Ok(client);
            }
        };
        match verified {
            Some((client, _)) => Ok(client),
            None => Err(Error::Unexpected(anyhow::anyhow!(
                "ungated verification skipped"
            ))),
        }
    }

    /// The verifier of `Proof::Secret`. Unknown clients and wrong secrets fail alike, after
    /// the same single hash verification. A secret this replica verified recently, for the
    /// client as it still is, costs no verification and no database read (see
    /// `secret_cache`). Says whether the secret was verified now (`true`) or remembered;
    /// `Ok(None)` when `gate` said, as the verification was about to run, that it must not.
    pub(super) async fn verify_secret(
        &self,
        client_id: &str,
        secret: &str,
        gate: Option<HashGate>,
    ) -> Result<Option<(Arc<Client>, bool)>> {
        let id = ClientId::parse("client_id", client_id).map_err(|_| Error::InvalidClient)?;
        let secret = ClientSecret::from_presented(secret).ok_or(Error::InvalidClient)?;
        // A view too stale to introspect from is too stale to issue from (a client disabled
        // meanwhile would get tokens).
        self.registry.ensure_fresh()?;
        let now = to_micros(self.clock.now());
        // Taken before the database reads: if the client changes meanwhile, what is
        // remembered below is already stale.
        let known = self.registry.client(id.as_str());
        if let Some(client) = &known
            && self.registry.secrets.check(client, &secret, now)
        {
            self.stats.secret_cache_hits.inc();
            return secret_allowed(client.clone()).map(|c| Some((c, false)));
        }
        self.stats.secret_cache_misses.inc();
        // The same two lookups and one argon2 verification whether or not the client exists.
        let client = self.store.get_client(id.as_str()).await?;
        let live = self
            .store
            .live_secret(id.as_str(), &secret.selector(), now)
            .await?;
        let expire = live.as_ref().and_then(|l| l.expire_time_us);
        let hash = live.map(|l| l.hash);
        let matched = match gate {
            Some(gate) => match self.hasher.verify_unless(&secret, hash, gate).await? {
                Some(matched) => matched,
                None => return Ok(None),
            },
            None => self.hasher.verify(&secret, hash).await?,
        };
        if !matched {
            return Err(Error::InvalidClient);
        }
        let client = client.ok_or(Error::InvalidClient)?;
        if let Some(known) = known {
            self.registry.secrets.remember(known, &secret, now, expire);
        }
        secret_allowed(Arc::new(client)).map(|c| Some((c, true)))
    }
}

/// A right secret is a proof only for a client that lists a secret method: one moved to its
/// own key (`private_key_jwt` only) may still have secrets stored, and none of them works.
fn secret_allowed(client: Arc<Client>) -> Result<Arc<Client>> {
    if client.spec.auth_methods.uses_secret() {
        Ok(client)
    } else {
        tracing::debug!("a secret for a client that lists no secret method");
        Err(Error::InvalidClient)
    }
}
