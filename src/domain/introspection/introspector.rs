//! Verifying tokens: `Introspect` (RFC 7662) and the bearer-token check that guards tokend's own
//! RPCs. Both run the same verification, so what an introspection says and what tokend accepts
//! from its own callers never disagree.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Validation;

use super::caller::Caller;
use super::registry::Registry;
use super::token_cache::{VerifiedToken, token_key};
use crate::domain::audit::UsageRecorder;
use crate::domain::audit::usage::Counter;
use crate::domain::clients::Client;
use crate::domain::clock::{Clock, to_micros};
use crate::domain::error::{Error, Result};
use crate::domain::ids::TenantId;
use crate::domain::keys::{KeyRing, PublicJwk};
use crate::domain::policy::{Policy, address};
use crate::domain::scope::{INTROSPECT_SCOPE, ScopeSet};
use crate::domain::stats::Stats;
use crate::domain::token_endpoint::claims::{AccessClaims, is_access_token_typ};
use crate::domain::token_endpoint::opaque::{OpaqueKind, OpaqueToken};
use crate::store::Store;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// A token that verified: signature (or stored opaque token), type, issuer, time window, live
/// client of the same tenant, not revoked.
#[derive(Debug, Clone)]
pub struct ActiveToken {
    /// The token's claims and scopes, shared with the verified-token cache.
    pub token: Arc<VerifiedToken>,
    /// The issuing client as it is now (its scopes may have shrunk since issue).
    pub client: Arc<Client>,
}

impl ActiveToken {
    /// The token's claims.
    pub fn claims(&self) -> &AccessClaims {
        &self.token.claims
    }

    /// The token's scopes, as issued.
    pub fn scopes(&self) -> &ScopeSet {
        &self.token.scopes
    }

    /// The tenant of the token and of its client.
    pub fn tenant(&self) -> &TenantId {
        &self.client.tenant
    }
}

/// Checks what a JWT access token says by itself: size, header, signature, issuer. No I/O.
pub struct JwtVerifier {
    pub(in crate::domain) keys: Arc<KeyRing>,
    pub(in crate::domain) issuer: String,
}

impl JwtVerifier {
    /// The claims of a well-formed access token signed by one of our keys; `None` otherwise.
    pub fn verify(&self, token: &str) -> Option<AccessClaims> {
        self.verify_with_kid(token).map(|(claims, _)| claims)
    }

    /// Like [`JwtVerifier::verify`], with the id of the key that verified the signature.
    fn verify_with_kid(&self, token: &str) -> Option<(AccessClaims, String)> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let header = jsonwebtoken::decode_header(token).ok()?;
        if !is_access_token_typ(header.typ.as_deref()) {
            return None;
        }
        let kid = header.kid?;
        let key = self.keys.verifying_key(&kid)?;
        // The header's alg must be the key's own: no algorithm confusion.
        if header.alg != key.jwt_algorithm() {
            return None;
        }
        let mut validation = Validation::new(key.jwt_algorithm());
        validation.validate_exp = false; // checked against our Clock by the caller
        validation.validate_nbf = false;
        validation.validate_aud = false; // reported, not enforced: the resource server decides
        validation.required_spec_claims = HashSet::new();
        validation.set_issuer(&[&self.issuer]);
        jsonwebtoken::decode::<AccessClaims>(token, key.decoding_key(), &validation)
            .ok()
            .map(|data| (data.claims, kid))
    }
}

/// Verifies tokens against the key ring, the stored opaque tokens and the registry.
pub struct Introspector {
    pub(in crate::domain) store: Arc<dyn Store>,
    pub(in crate::domain) keys: Arc<KeyRing>,
    pub(in crate::domain) jwt: Arc<JwtVerifier>,
    pub(in crate::domain) registry: Arc<Registry>,
    pub(in crate::domain) clock: Arc<dyn Clock>,
    pub(in crate::domain) issuer: String,
    pub(in crate::domain) leeway: Duration,
    pub(in crate::domain) require_caller: bool,
    /// Introspection answers, counted per client.
    pub(in crate::domain) usage: Arc<UsageRecorder>,
    /// Answers and cache hits, for Prometheus.
    pub(in crate::domain) stats: Arc<Stats>,
    /// The API quotas the edge counts (`edge_quota`), shared with the token endpoint's limits
    /// (the same live replica count).
    pub(in crate::domain) policy: Arc<Policy>,
}

/// What a token turned out to be.
enum Lookup {
    Active(ActiveToken),
    /// Not active; the client and tenant it names, when it is genuine (signed by us, or
    /// stored).
    Inactive(Option<(String, String)>),
}

impl Introspector {
    /// RFC 7662 introspection on behalf of `caller`. `Ok(None)` means `active: false`: the token
    /// is malformed, unknown, expired, of a disabled or deleted client, or of a tenant the caller
    /// may not see.
    #[tracing::instrument(level = "debug", skip_all, fields(caller = caller.map(|c| c.client_id.as_str())))]
    ///
    /// With `client_address` (where the resource server saw the token come from), a token of a
    /// client whose allow-list does not contain that address is inactive too. With
    /// `client_certificate` (the `x5t#S256` of the certificate the resource server saw the
    /// token come with), a token bound to another certificate is inactive too (RFC 8705
    /// section 3); a bound token asked about without one answers with its `cnf`, for the
    /// resource server to compare.
    pub async fn introspect(
        &self,
        caller: Option<&Caller>,
        token: &str,
        client_address: Option<IpAddr>,
        client_certificate: Option<&str>,
    ) -> Result<Option<ActiveToken>> {
        match caller {
            Some(caller) => caller.require_scope(INTROSPECT_SCOPE)?,
            None if self.require_caller => {
                return Err(Error::Unauthenticated(format!(
                    "introspection needs a caller: `authorization: Bearer <token>` with a token \
                     holding scope {INTROSPECT_SCOPE} (over HTTP also the caller's own client \
                     credentials)"
                )));
            }
            None => {}
        }
        self.answer(caller, token, client_address, client_certificate)
            .await
    }

    /// [`Introspector::introspect`] without asking for a caller token: for front ends that the
    /// deployment already trusts (the Envoy edge, `edge`). Every check on the token itself, the
    /// client's allow-list, the tenant and the usage counters are the same.
    pub(in crate::domain) async fn answer(
        &self,
        caller: Option<&Caller>,
        token: &str,
        client_address: Option<IpAddr>,
        client_certificate: Option<&str>,
    ) -> Result<Option<ActiveToken>> {
        let answer = self
            .answer_uncounted(caller, token, client_address, client_certificate)
            .await;
        match &answer {
            Ok(Some(_)) => self.stats.introspected_active.inc(),
            Ok(None) => self.stats.introspected_inactive.inc(),
            Err(_) => {}
        }
        answer
    }

    async fn answer_uncounted(
        &self,
        caller: Option<&Caller>,
        token: &str,
        client_address: Option<IpAddr>,
        client_certificate: Option<&str>,
    ) -> Result<Option<ActiveToken>> {
        self.registry.ensure_fresh()?;
        let now = self.clock.now();
        let active = match self.lookup(token, now.unix_timestamp()).await? {
            Lookup::Active(active) => active,
            Lookup::Inactive(owner) => {
                // Another tenant's token is none of this caller's business: its usage is not
                // the caller's to move either.
                if let Some((id, tenant)) = owner
                    && caller.is_none_or(|c| c.sees_tenant_named(&tenant))
                {
                    self.count(&id, Counter::IntrospectionsInactive, now);
                }
                return Ok(None);
            }
        };
        if let Some(caller) = caller
            && !caller.sees_tenant(active.tenant())
        {
            return Ok(None);
        }
        let elsewhere = client_address
            .is_some_and(|addr| !address::allowed(&active.client.spec.allowed_cidrs, addr));
        let other_certificate = client_certificate.is_some_and(|seen| {
            active
                .claims()
                .bound_to()
                .is_some_and(|bound| bound != seen)
        });
        if elsewhere || other_certificate {
            self.count(
                active.client.id.as_str(),
                Counter::IntrospectionsInactive,
                now,
            );
            return Ok(None);
        }
        self.count(
            active.client.id.as_str(),
            Counter::IntrospectionsActive,
            now,
        );
        Ok(Some(active))
    }

    /// Turns a bearer token into a `Caller`. The token must be active and meant for tokend
    /// itself (its audience includes tokend's issuer).
    pub async fn authenticate(&self, bearer: &str) -> Result<Caller> {
        let invalid = || {
            Error::Unauthenticated("the bearer token is not valid (expired, revoked, malformed or not issued by this tokend)".into())
        };
        self.registry.ensure_fresh()?;
        let active = self.verify(bearer).await?.ok_or_else(invalid)?;
        if !active.claims().aud.iter().any(|a| a == &self.issuer) {
            return Err(Error::Unauthenticated(format!(
                "the bearer token's audience does not include this tokend ({})",
                self.issuer
            )));
        }
        // Power over tokend follows the client as it is now: a `tokend.*` scope removed from
        // the client stops working at once, not when its tokens expire.
        Ok(Caller {
            client_id: active.claims().client_id.clone(),
            tenant: active.tenant().clone(),
            scopes: active
                .scopes()
                .without_revoked_reserved(&active.client.spec.scopes),
            address: None,
        })
    }

    /// The public keys, for the JWKS.
    pub fn jwks(&self) -> Vec<PublicJwk> {
        self.keys.jwks()
    }

    /// The JWK Set document (RFC 7517 section 5), as every front end serves it.
    pub fn jwks_json(&self) -> String {
        serde_json::json!({ "keys": self.keys.jwks() }).to_string()
    }

    /// Full verification. `Ok(None)` for any token that is not active; `Err` only when the
    /// answer cannot be known (the database is down, for an opaque token). What depends on
    /// the token alone is done once per token and cached; the live checks run every time.
    pub(in crate::domain) async fn verify(&self, token: &str) -> Result<Option<ActiveToken>> {
        let now = self.clock.now().unix_timestamp();
        Ok(match self.lookup(token, now).await? {
            Lookup::Active(active) => Some(active),
            Lookup::Inactive(_) => None,
        })
    }

    /// `verify` at `now` (Unix seconds), saying which client an inactive but genuine token
    /// belongs to, for its usage counters.
    async fn lookup(&self, token: &str, now: i64) -> Result<Lookup> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Ok(Lookup::Inactive(None));
        }
        let key = token_key(token);
        let verified = match self.registry.tokens.get(&key, now) {
            Some(hit) => {
                self.stats.token_cache_hits.inc();
                hit
            }
            None => {
                self.stats.token_cache_misses.inc();
                let Some(verified) = self.verify_content(token).await? else {
                    return Ok(Lookup::Inactive(None));
                };
                if verified.dead_after > now {
                    self.registry.tokens.insert(key, verified.clone());
                }
                verified
            }
        };
        Ok(match self.check_live(verified.clone(), now).await {
            Some(active) => Lookup::Active(active),
            None => Lookup::Inactive(Some((
                verified.claims.client_id.clone(),
                verified.claims.tenant.clone(),
            ))),
        })
    }

    /// Counts an introspection answer in the client's usage (memory only; see `audit::usage`).
    fn count(&self, client_id: &str, counter: Counter, now: time::OffsetDateTime) {
        self.usage.count(client_id, counter, to_micros(now));
    }

    /// The token's own content: a JWT's signature, header and issuer, or the stored record of
    /// an opaque token; and its scopes parsed.
    async fn verify_content(&self, token: &str) -> Result<Option<Arc<VerifiedToken>>> {
        let verified = if token.starts_with(OpaqueKind::Access.prefix()) {
            self.lookup_opaque(token)
                .await?
                .map(|claims| (claims, None))
        } else {
            self.jwt
                .verify_with_kid(token)
                .map(|(claims, kid)| (claims, Some(kid)))
        };
        let Some((claims, kid)) = verified else {
            return Ok(None);
        };
        let Ok(scopes) = ScopeSet::parse_claim(&claims.scope) else {
            return Ok(None);
        };
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(0);
        Ok(Some(Arc::new(VerifiedToken {
            dead_after: claims.exp.saturating_add(leeway),
            claims,
            scopes,
            kid,
        })))
    }

    /// The time window at `now` (Unix seconds), the signing key (not retired since), the
    /// client (exists, active, same tenant, token of its current generation) and the deny
    /// list. In memory only.
    async fn check_live(&self, token: Arc<VerifiedToken>, now: i64) -> Option<ActiveToken> {
        let claims = &token.claims;
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(0);
        if claims.exp + leeway <= now || claims.nbf - leeway > now {
            return None;
        }
        if let Some(kid) = &token.kid
            && !self.keys.may_verify(kid)
        {
            return None;
        }
        let client = self
            .registry
            .client_for_token(&claims.client_id, claims.exp.saturating_mul(1_000_000))
            .await?;
        if !client.spec.active
            || client.tenant.as_str() != claims.tenant
            || claims.generation < client.token_generation
        {
            return None;
        }
        if self.registry.is_revoked(&claims.jti, claims.gid.as_deref()) {
            return None;
        }
        // An exchanged token lives only as long as every token it came from (RFC 8693 leaves
        // this open; tokend closes it): the same checks, for each of them.
        for origin in &claims.src {
            let from = self
                .registry
                .client_for_token(&origin.client_id, claims.exp.saturating_mul(1_000_000))
                .await?;
            if !from.spec.active
                || from.tenant.as_str() != claims.tenant
                || origin.generation < from.token_generation
                || self.registry.is_revoked(&origin.jti, origin.gid.as_deref())
            {
                return None;
            }
        }
        Some(ActiveToken { token, client })
    }

    /// The claims an opaque access token stands for, if it is stored.
    async fn lookup_opaque(&self, token: &str) -> Result<Option<AccessClaims>> {
        let Some(token) = OpaqueToken::from_presented(OpaqueKind::Access, token) else {
            return Ok(None);
        };
        let Some(row) = self.store.find_opaque(&token.hash()).await? else {
            return Ok(None);
        };
        match serde_json::from_value::<AccessClaims>(row.claims) {
            Ok(claims) => Ok(Some(claims)),
            Err(err) => {
                tracing::error!(jti = %row.jti, error = %err, "stored opaque token is corrupt");
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
#[path = "introspector_tests.rs"]
mod tests;
