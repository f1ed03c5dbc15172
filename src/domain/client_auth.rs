//! Client authentication at the token endpoint, with the client policy every front end gets:
//! the lockout and the per-address rate limit before any argon2 work, then the credentials,
//! then the client's allow-list, state and rate limit. A refusal never says more than the
//! caller could know: the allow-list is checked only after the secret, and a locked client_id
//! or address is refused whether or not the secret presented is right.

use std::net::IpAddr;
use std::sync::Arc;

use super::audit::AuditKind;
use super::audit::usage::Refusal;
use super::client::Client;
use super::clock::to_micros;
use super::error::{Error, Result};
use super::ids::ClientId;
use super::introspection::Caller;
use super::policy::{Subject, locked_error};
use super::secret::ClientSecret;
use super::tokens::TokenIssuer;

/// Asked on a hashing thread just before argon2 runs: `true` means "do not".
type Gate = Box<dyn FnOnce() -> bool + Send + 'static>;

/// Most locked refusals held back at once, across the process.
pub const MAX_HELD_REFUSALS: usize = 1024;
static HELD: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_HELD_REFUSALS);

/// Which endpoint a client authenticates at: the rate limits count `Token` calls
/// (IssueToken, RefreshToken, token exchange) only; a disabled client may still revoke its
/// tokens, but neither get new ones nor introspect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Revocation,
    /// Introspection by a resource server that authenticates with its own credentials
    /// (RFC 7662 section 2.1, over HTTP).
    Introspection,
}

impl TokenIssuer {
    /// Authenticates the client and applies its policy: the whole gate of the token endpoint.
    /// Returns the client, active and allowed to make this call from `addr`.
    pub async fn authorize(
        &self,
        client_id: &str,
        secret: &str,
        addr: Option<IpAddr>,
        endpoint: Endpoint,
    ) -> Result<Arc<Client>> {
        let now_us = to_micros(self.clock.now());
        let id = ClientId::parse("client_id", client_id).ok();
        let id = id.as_ref().map(ClientId::as_str);
        let refuse = |kind, detail, err| self.refused(kind, id, addr, detail, now_us, err);
        if let Some(wait) = self.registry.lockout.locked(id, addr, now_us) {
            self.tarpit(wait).await;
            return Err(refuse(AuditKind::RefusedLockout, None, locked_error(wait)));
        }
        if endpoint == Endpoint::Token
            && let Err(err) = self.policy.take_address_call(addr, now_us)
        {
            let detail = Some(("limit", "address"));
            return Err(refuse(AuditKind::RefusedRateLimit, detail, err));
        }
        let registry = self.registry.clone();
        let (owned_id, gate_now) = (id.map(str::to_owned), now_us);
        let gate = move || {
            registry
                .lockout
                .locked(owned_id.as_deref(), addr, gate_now)
                .is_some()
        };
        let verified_now = match self
            .authenticate_gated(client_id, secret, Some(Box::new(gate)))
            .await
        {
            Ok(Some(verified)) => Some(verified),
            // Locked while this call waited for a hashing thread: refused, no argon2 spent.
            Ok(None) => None,
            Err(Error::InvalidClient) => {
                self.authentication_failed(id, addr, now_us).await;
                let err = Error::InvalidClient;
                return Err(refuse(AuditKind::RefusedBadSecret, None, err));
            }
            Err(err) => return Err(err),
        };
        // A lock that began while this call was being verified holds too, right secret or
        // not: concurrent guesses get no answer a lock would have withheld.
        // (A remembered secret answered at once: nothing can have begun since the check above.)
        let locked = match &verified_now {
            Some((_, false)) => None,
            _ => {
                let later = to_micros(self.clock.now());
                self.registry.lockout.locked(id, addr, later)
            }
        };
        let (client, verified_now) = match (verified_now, locked) {
            (Some(verified), None) => verified,
            (_, wait) => {
                let wait = wait.unwrap_or(std::time::Duration::from_secs(1));
                self.tarpit(wait).await;
                return Err(refuse(AuditKind::RefusedLockout, None, locked_error(wait)));
            }
        };
        if let Err(err) = self.policy.check_address(&client, addr) {
            return Err(refuse(AuditKind::RefusedAddress, None, err));
        }
        // A disabled client's tokens are all inactive already; it may still revoke them.
        if endpoint != Endpoint::Revocation && !client.spec.active {
            return Err(Error::UnauthorizedClient(
                "this client is disabled; an admin can re-enable it".into(),
            ));
        }
        if endpoint == Endpoint::Token
            && let Err(err) = self.policy.take_client_call(&client, now_us)
        {
            let detail = Some(("limit", "client"));
            return Err(refuse(AuditKind::RefusedRateLimit, detail, err));
        }
        // Only a secret verified just now, by a client that passed every check, makes its
        // address known-good (a remembered secret was recorded when it was verified).
        if verified_now {
            self.registry
                .lockout
                .succeeded(client.id.as_str(), addr, now_us);
        }
        Ok(client)
    }

    /// A resource server that authenticates with its own client credentials to introspect
    /// (RFC 7662 section 2.1): the same gate as the token endpoint, and the caller's power is
    /// what its client is allowed now (`tokend.introspect` must be among its scopes).
    pub async fn authenticate_caller(
        &self,
        client_id: &str,
        secret: &str,
        addr: Option<IpAddr>,
    ) -> Result<Caller> {
        let client = self
            .authorize(client_id, secret, addr, Endpoint::Introspection)
            .await?;
        Ok(Caller {
            client_id: client.id.to_string(),
            tenant: client.tenant.clone(),
            scopes: client.spec.scopes.clone(),
            address: addr,
        })
    }

    /// Holds a locked caller's refusal for the configured delay, so a guessing loop gets a few
    /// answers a second instead of thousands, for the cost of a timer. At most
    /// [`MAX_HELD_REFUSALS`] are held at once; past that, refusals are answered at once (a
    /// flood must not pile up pending calls).
    async fn tarpit(&self, wait: std::time::Duration) {
        let delay = self.registry.lockout.refusal_delay(wait);
        if delay.is_zero() {
            return;
        }
        if let Ok(_held) = HELD.try_acquire() {
            tokio::time::sleep(delay).await;
        }
    }

    /// Counts a refusal for the audit trail and the client's usage (in memory; written in
    /// batches) and passes its error on. A client_id that names no client counts as unknown.
    fn refused(
        &self,
        kind: AuditKind,
        id: Option<&str>,
        addr: Option<IpAddr>,
        detail: Option<(&'static str, &'static str)>,
        now_us: i64,
        err: Error,
    ) -> Error {
        let known = id.and_then(|id| self.registry.client(id));
        let refusal = Refusal {
            kind,
            client: known.as_deref().map(|c| (c.id.as_str(), c.tenant.as_str())),
            address: addr,
            detail,
        };
        self.usage.refused(&refusal, now_us);
        err
    }

    /// Checks a client's credentials. Unknown clients and wrong secrets fail alike, after the
    /// same single hash verification. A secret this replica verified recently, for the client
    /// as it still is, costs no verification and no database read (see `secret_cache`).
    /// No policy: front ends call [`TokenIssuer::authorize`].
    pub async fn authenticate(&self, client_id: &str, secret: &str) -> Result<Arc<Client>> {
        match self.authenticate_gated(client_id, secret, None).await? {
            Some((client, _)) => Ok(client),
            None => Err(Error::Unexpected(anyhow::anyhow!(
                "ungated verification skipped"
            ))),
        }
    }

    /// [`TokenIssuer::authenticate`], saying whether the secret was verified now (`true`) or
    /// remembered; `Ok(None)` when `gate` said, as the verification was about to run, that
    /// it must not.
    async fn authenticate_gated(
        &self,
        client_id: &str,
        secret: &str,
        gate: Option<Gate>,
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
            return Ok(Some((client.clone(), false)));
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
        let row = client.ok_or(Error::InvalidClient)?;
        if let Some(known) = known {
            self.registry.secrets.remember(known, &secret, now, expire);
        }
        Ok(Some((Arc::new(Client::from_row(row)?), true)))
    }

    /// Counts a failed authentication for the whole deployment (the store's counters, one
    /// per client_id and per address); a lock it begins holds here at once and reaches every
    /// replica through the change log. A malformed client_id counts against the address only
    /// (it names no client). While the database cannot count, this replica counts alone.
    async fn authentication_failed(&self, id: Option<&str>, addr: Option<IpAddr>, now_us: i64) {
        let lockout = &self.registry.lockout;
        let max = lockout.max_failures();
        if max == 0 {
            return;
        }
        let subjects = id
            .map(|id| Subject::Client(id.to_owned()))
            .into_iter()
            .chain(addr.map(Subject::address));
        for subject in subjects {
            let counted = self
                .store
                .count_failure(&subject.encode(), now_us, lockout.window_us())
                .await;
            let until_us = match counted {
                Ok((failures, strikes)) if failures >= i64::from(max) => {
                    let strikes = u32::try_from(strikes).unwrap_or(u32::MAX);
                    now_us.saturating_add(lockout.lock_length_us(&subject, strikes))
                }
                Ok(_) => continue,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot count a failed authentication in the database; counting here");
                    match lockout.failed_locally(&subject, max, now_us) {
                        Some(until) => until,
                        None => continue,
                    }
                }
            };
            lockout.lock(subject.clone(), until_us);
            match &subject {
                Subject::Client(id) => {
                    tracing::warn!(client_id = %id, "too many failed authentications; client_id locked")
                }
                Subject::Address(net) => {
                    tracing::warn!(address = %net, "too many failed authentications; address locked")
                }
            }
            if let Err(err) = self
                .store
                .record_lockout(&subject.encode(), until_us, now_us)
                .await
            {
                tracing::warn!(error = %err, "could not announce a lock to other replicas");
            }
        }
    }
}
