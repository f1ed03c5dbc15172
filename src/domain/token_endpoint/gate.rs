//! The gate of the token endpoint: client authentication with the client policy every front
//! end gets: the lockout and the per-address rate limit before any argon2 work, then the proof
//! (checked by the verifier of its kind: `secret_proof`, `assertion_proof` or
//! `certificate_proof`; a failure of any counts toward the lockout alike), then the client's allow-list, state and the rate limit of the grant type.
//! A refusal never says more than the caller could know: the allow-list is checked only after the secret, and a locked client_id
//! or address is refused whether or not the secret presented is right.

use std::net::IpAddr;
use std::sync::Arc;

use secrecy::ExposeSecret as _;

use super::client_auth::{ClientAuth, Endpoint, Proof};
use super::grant::GrantType;
use super::service::TokenEndpoint;
use crate::domain::audit::AuditKind;
use crate::domain::audit::usage::Refusal;
use crate::domain::clients::Client;
use crate::domain::clock::to_micros;
use crate::domain::error::{Error, Result};
use crate::domain::ids::ClientId;
use crate::domain::introspection::caller::Caller;
use crate::domain::policy::{ClientLimit, Subject, locked_error};

/// The method name a client secret is counted under (HTTP Basic, the form body and the gRPC
/// field are one proof).
pub const SECRET_METHOD: &str = "client_secret";

/// Most locked refusals held back at once, across the process.
pub const MAX_HELD_REFUSALS: usize = 1024;
static HELD: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_HELD_REFUSALS);

/// One attempt at the gate: what is known of it before the proof is checked.
struct Attempt<'a> {
    /// The client_id, when well-formed.
    id: Option<&'a str>,
    addr: Option<IpAddr>,
    now_us: i64,
    endpoint: Endpoint,
}

impl TokenEndpoint {
    /// Authenticates the client and applies its policy: the whole gate of the token endpoint.
    /// Returns the client, active and allowed to make this call from its address.
    pub(super) async fn admit(&self, who: &ClientAuth, endpoint: Endpoint) -> Result<Arc<Client>> {
        let id = ClientId::parse("client_id", &who.client_id).ok();
        let attempt = Attempt {
            id: id.as_ref().map(ClientId::as_str),
            addr: who.address,
            now_us: to_micros(self.clock.now()),
            endpoint,
        };
        self.before_proof(&attempt).await?;
        let (client, method) = self.check_proof(who, &attempt).await?;
        self.client_policy(&client, &attempt)?;
        self.trust(&client, &attempt).await;
        self.stats.authenticated(method);
        self.usage
            .authenticated(client.id.as_str(), method, attempt.now_us);
        Ok(client)
    }

    /// A client that passed every check is trusted at its address (see `policy::lockout`):
    /// in memory at once, and, when the pair is new or half its trust has gone, stored and
    /// announced to every replica. A store that cannot take it costs nothing but the
    /// announcement (this replica trusts the pair anyway, and the next success tries again).
    async fn trust(&self, client: &Client, at: &Attempt<'_>) {
        let lockout = &self.registry.lockout;
        let Some(pair) = lockout.succeeded(client.id.as_str(), at.addr, at.now_us) else {
            return;
        };
        if let Err(err) = self.store.trust_address(&pair, at.now_us).await {
            tracing::warn!(error = %err, "could not share a trusted address with other replicas");
            lockout.announcement_failed(&pair);
        }
    }

    /// What is refused before any proof is looked at (so before any argon2 work): a locked
    /// client_id or address, and the per-address rate limit of the token endpoint.
    async fn before_proof(&self, at: &Attempt<'_>) -> Result<()> {
        if let Some(wait) = self.registry.lockout.locked(at.id, at.addr, at.now_us) {
            self.tarpit(wait).await;
            return Err(self.refused(AuditKind::RefusedLockout, at, None, locked_error(wait)));
        }
        if matches!(at.endpoint, Endpoint::Token(_))
            && let Err(err) = self.policy.take_address_call(at.addr, at.now_us)
        {
            let detail = Some(("limit", "address"));
            return Err(self.refused(AuditKind::RefusedRateLimit, at, detail, err));
        }
        Ok(())
    }

    /// The proof, checked by the verifier of its kind; a failure counts toward the lockout.
    /// Returns the client and the name of the method it proved itself by.
    async fn check_proof(
        &self,
        who: &ClientAuth,
        at: &Attempt<'_>,
    ) -> Result<(Arc<Client>, &'static str)> {
        let registry = self.registry.clone();
        let (owned_id, addr, now_us) = (at.id.map(str::to_owned), at.addr, at.now_us);
        let gate = move || {
            registry
                .lockout
                .locked(owned_id.as_deref(), addr, now_us)
                .is_some()
        };
        let verified = match &who.proof {
            Proof::Secret(secret) => {
                let secret = secret.expose_secret();
                self.verify_secret(&who.client_id, secret, Some(Box::new(gate)))
                    .await
                    .map(|v| v.map(|(client, fresh)| (client, fresh, SECRET_METHOD)))
            }
            // Verified now (no hashing thread to wait for): the locks are looked at again below.
            Proof::Assertion(assertion) => self
                .verify_assertion(&who.client_id, assertion)
                .await
                .map(|(client, method)| Some((client, true, method.as_str()))),
            Proof::Certificate(cert) => self
                .verify_certificate(&who.client_id, cert)
                .await
                .map(|(client, method)| Some((client, true, method.as_str()))),
        };
        let verified = match verified {
            Ok(verified) => verified,
            Err(Error::InvalidClient) => {
                self.stats.authentication_failed(who.proof.kind());
                return Err(self.failed_proof(at, who.proof.kind()).await);
            }
            Err(err) => return Err(err),
        };
        // `None`: locked while this call waited for a hashing thread, no argon2 spent. A lock
        // that began while this call was being verified holds too, right proof or not:
        // concurrent guesses get no answer a lock would have withheld. (A remembered secret
        // answered at once: nothing can have begun since the check before.)
        let locked = match &verified {
            Some((_, false, _)) => None,
            _ => {
                let later = to_micros(self.clock.now());
                self.registry.lockout.locked(at.id, at.addr, later)
            }
        };
        match (verified, locked) {
            (Some((client, _, method)), None) => Ok((client, method)),
            (_, wait) => {
                let wait = wait.unwrap_or(std::time::Duration::from_secs(1));
                self.tarpit(wait).await;
                Err(self.refused(AuditKind::RefusedLockout, at, None, locked_error(wait)))
            }
        }
    }

    /// A proof that failed. This replica accounts for failures one at a time, each after a
    /// fresh look at the locks: a guess whose verification ended after a lock began (begun by
    /// a guess that ended first) gets the lock's refusal, not an answer, so exactly
    /// `max_failures` guesses are answered however many were verified at once.
    /// The refusal's audit event names the kind of proof that failed (`proof`: `secret`,
    /// `assertion`, `certificate`).
    async fn failed_proof(&self, at: &Attempt<'_>, proof: &'static str) -> Error {
        let lockout = &self.registry.lockout;
        let locked = {
            let _one_at_a_time = lockout.accounting().await;
            let now_us = to_micros(self.clock.now());
            let locked = lockout.locked(at.id, at.addr, now_us);
            if locked.is_none() {
                self.authentication_failed(at.id, at.addr, at.now_us).await;
            }
            locked
        };
        match locked {
            Some(wait) => {
                self.tarpit(wait).await;
                self.refused(AuditKind::RefusedLockout, at, None, locked_error(wait))
            }
            None => self.refused(
                AuditKind::RefusedBadSecret,
                at,
                Some(("proof", proof)),
                Error::InvalidClient,
            ),
        }
    }

    /// The authenticated client's own policy: its allow-list, its state, its rate limit.
    fn client_policy(&self, client: &Client, at: &Attempt<'_>) -> Result<()> {
        if let Err(err) = self.policy.check_address(client, at.addr) {
            return Err(self.refused(AuditKind::RefusedAddress, at, None, err));
        }
        // A disabled client's tokens are all inactive already; it may still revoke them.
        if at.endpoint != Endpoint::Revocation && !client.spec.active {
            return Err(Error::UnauthorizedClient(
                "this client is disabled; an admin can re-enable it".into(),
            ));
        }
        if let Endpoint::Token(grant) = at.endpoint {
            let kind = match grant {
                GrantType::RefreshToken => ClientLimit::Refreshes,
                GrantType::ClientCredentials | GrantType::TokenExchange => ClientLimit::Tokens,
            };
            if let Err(err) = self.policy.take_client_call(client, kind, at.now_us) {
                let detail = Some(("limit", kind.name()));
                return Err(self.refused(AuditKind::RefusedRateLimit, at, detail, err));
            }
        }
        Ok(())
    }

    /// A resource server that authenticates with its own client credentials to introspect
    /// (RFC 7662 section 2.1): the same gate as the token endpoint, and the caller's power is
    /// what its client is allowed now (`tokend.introspect` must be among its scopes).
    pub async fn authenticate_caller(&self, who: &ClientAuth) -> Result<Caller> {
        let client = self.admit(who, Endpoint::Introspection).await?;
        Ok(Caller {
            client_id: client.id.to_string(),
            tenant: client.tenant.clone(),
            scopes: client.spec.scopes.clone(),
            address: who.address,
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
        at: &Attempt<'_>,
        detail: Option<(&'static str, &'static str)>,
        err: Error,
    ) -> Error {
        let known = at.id.and_then(|id| self.registry.client(id));
        let refusal = Refusal {
            kind,
            client: known.as_deref().map(|c| (c.id.as_str(), c.tenant.as_str())),
            address: at.addr,
            detail,
        };
        self.usage.refused(&refusal, at.now_us);
        err
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
        for subject in lockout.failure_subjects(id, addr, now_us) {
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
                Subject::Pair(id, net) => {
                    tracing::warn!(client_id = %id, address = %net, "too many failed authentications of a client at an address it is trusted at; the pair is locked")
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
