//! The refresh grant (RFC 6749 section 6) with rotation and reuse detection (RFC 9700 section
//! 4.14.2): the presented token is spent and a successor of the same family returned.

use std::net::IpAddr;

use super::client_auth::ClientAuth;
use super::grant::IssuedToken;
use super::mint::{micros, secs};
use super::opaque::{OpaqueKind, OpaqueToken};
use super::records::{RefreshClaim, RefreshFamily, RefreshRecord};
use super::service::TokenEndpoint;
use crate::domain::audit::{self, AuditEvent, AuditKind};
use crate::domain::clients::Client;
use crate::domain::clock::{from_micros, to_micros};
use crate::domain::error::{Error, Result};
use crate::domain::scope::ScopeSet;

/// A refresh token that was not exchanged, and what is known of the request.
struct Rejection<'a> {
    client: &'a Client,
    successor: &'a OpaqueToken,
    token: RefreshRecord,
    grant: &'a RefreshFamily,
    address: Option<IpAddr>,
}

impl TokenEndpoint {
    /// Rotation: a spent token presented again by its client within the retry window, while
    /// its successor is unused, gets that same successor (the client's earlier response was
    /// lost); any other reuse revokes the whole family. `requested` narrows the family's
    /// scopes for the new access token (empty: the family's scopes).
    /// A family bound to a certificate (RFC 8705) is refreshed only by a call with that
    /// certificate (`who`'s): for a client with bound tokens (`cnf`, its binding now) this is
    /// checked before the token is spent.
    pub(super) async fn refresh(
        &self,
        client: &Client,
        refresh_token: &str,
        requested: &ScopeSet,
        who: &ClientAuth,
        cnf: Option<String>,
    ) -> Result<IssuedToken> {
        let address = who.address;
        let certificate = who.certificate.as_ref().map(|c| c.thumbprint());
        if client.spec.refresh_token_ttl.is_zero() {
            return Err(Error::UnauthorizedClient(
                "refresh tokens are not enabled for this client (its refresh_token_ttl is 0)"
                    .into(),
            ));
        }
        let presented = OpaqueToken::from_presented(OpaqueKind::Refresh, refresh_token)
            .ok_or_else(|| {
                Error::InvalidGrant("refresh_token is not a tokend refresh token".into())
            })?;
        // Narrowing and the certificate are checked before the token is spent: a refused
        // request must leave the refresh token usable (RFC 6749 section 6). The family's
        // scopes and binding never change.
        if (!requested.is_empty() || cnf.is_some())
            && let Some((_, grant)) = self.store.find_refresh(&presented.hash()).await?
            && grant.client_id == client.id.as_str()
        {
            check_binding(&grant, certificate)?;
            ScopeSet::parse("scopes", &grant.scopes)
                .unwrap_or_default()
                .grant(requested)?;
        }
        let successor = presented.successor(&self.mac);
        let now_us = to_micros(self.clock.now());
        let access_exp_us = now_us.saturating_add(micros(client.spec.access_token_ttl));
        let row = RefreshRecord {
            token_hash: successor.hash(),
            grant_id: String::new(), // the store fills in the family
            create_time_us: now_us,
            expire_time_us: now_us.saturating_add(micros(client.spec.refresh_token_ttl)),
            use_time_us: None,
        };
        let claim = self
            .store
            .rotate_refresh(
                &presented.hash(),
                client.id.as_str(),
                &row,
                access_exp_us,
                now_us,
            )
            .await?;
        let grant = match claim {
            RefreshClaim::Rotated(grant) => grant,
            RefreshClaim::Rejected(None) => {
                return Err(Error::InvalidGrant(
                    "the refresh token is unknown or has expired".into(),
                ));
            }
            RefreshClaim::Rejected(Some((token, grant))) => {
                let rejection = Rejection {
                    client,
                    successor: &successor,
                    token,
                    grant: &grant,
                    address,
                };
                self.rejected(rejection, now_us).await?;
                grant
            }
        };
        // A family bound while the client had the flag, refreshed after it was turned off.
        check_binding(&grant, certificate)?;
        let issued = self
            .mint_refreshed(client, &grant, requested, successor)
            .await?;
        Ok(issued)
    }

    /// Why a refresh token was not exchanged, and what follows: `Ok` only for a retry within
    /// the window (the caller then hands out the same successor).
    async fn rejected(&self, rejection: Rejection<'_>, now_us: i64) -> Result<()> {
        let Rejection {
            client,
            successor,
            token,
            grant,
            address,
        } = rejection;
        if grant.client_id != client.id.as_str() {
            return Err(Error::InvalidGrant(
                "the refresh token was not issued to this client".into(),
            ));
        }
        if grant.revoke_time_us.is_some() || grant.token_generation != client.token_generation {
            return Err(Error::InvalidGrant(
                "the refresh token's family has been revoked".into(),
            ));
        }
        let Some(used_us) = token.use_time_us else {
            return Err(Error::InvalidGrant("the refresh token has expired".into()));
        };
        if now_us.saturating_sub(used_us) <= micros(self.refresh_retry_window) {
            let next = self.store.find_refresh(&successor.hash()).await?;
            if next.is_some_and(|(t, _)| t.use_time_us.is_none() && t.expire_time_us > now_us) {
                tracing::info!(grant_id = %grant.grant_id, "refresh retried within the window; same successor");
                return Ok(());
            }
        }
        // Reuse: someone else may hold a copy. Kill the family, committed before answering.
        self.stats.refresh_reuse.inc();
        let leeway = self.deny_margin();
        let mut event = AuditEvent::new(AuditKind::RefreshReuseDetected, from_micros(now_us))
            .with("grant_id", grant.grant_id.clone());
        event.tenant = client.tenant.to_string();
        event.client_id = client.id.to_string();
        event.actor = client.id.to_string();
        event.source_address = address;
        let events = [event];
        let revoked = self
            .store
            .revoke_grant(&grant.grant_id, leeway, now_us, &events)
            .await?;
        if revoked {
            audit::log_all(&events);
        }
        self.registry.catch_up_after_write().await;
        tracing::warn!(
            client_id = %client.id,
            grant_id = %grant.grant_id,
            "refresh token reuse detected; the whole family is revoked"
        );
        Err(Error::InvalidGrant(
            "this refresh token was already used; as a precaution every token of its family \
             is now revoked (RFC 9700 section 4.14.2): authenticate again with IssueToken"
                .into(),
        ))
    }

    async fn mint_refreshed(
        &self,
        client: &Client,
        grant: &RefreshFamily,
        requested: &ScopeSet,
        successor: OpaqueToken,
    ) -> Result<IssuedToken> {
        // The family's scopes, narrowed on request, and never beyond what the client is
        // allowed now.
        let family = ScopeSet::parse("scopes", &grant.scopes).unwrap_or_default();
        let wanted = if requested.is_empty() {
            family
        } else {
            family.grant(requested)?
        };
        let still: Vec<&str> = wanted
            .iter()
            .filter(|s| client.spec.scopes.allows(s))
            .map(|s| s.as_str())
            .collect();
        let scopes = ScopeSet::parse("scopes", &still).unwrap_or_default();
        let audience = if client.spec.audiences.is_empty() {
            vec![self.issuer.clone()]
        } else {
            let kept: Vec<String> = grant
                .audiences
                .iter()
                .filter(|a| client.spec.audiences.contains(*a))
                .cloned()
                .collect();
            if kept.is_empty() {
                // Never widen a grant: none of its audiences is allowed any more.
                return Err(Error::InvalidGrant(
                    "none of the refresh token's audiences is allowed for this client any more; \
                     authenticate again with IssueToken"
                        .into(),
                ));
            }
            kept
        };
        let gid = Some(grant.grant_id.clone());
        let cnf = grant.cnf_x5t_s256.clone();
        let mut issued = self.mint(client, &scopes, audience, gid, cnf).await?;
        issued.refresh_token = Some(successor);
        issued.refresh_expires_in = secs(client.spec.refresh_token_ttl);
        Ok(issued)
    }
}

/// A family bound to a certificate is refreshed only by a call with that certificate (and
/// its tokens stay bound to it); an unbound family by any.
fn check_binding(grant: &RefreshFamily, presented: Option<&str>) -> Result<()> {
    match grant.cnf_x5t_s256.as_deref() {
        Some(bound) if presented != Some(bound) => Err(Error::InvalidGrant(
            "the refresh token is bound to another TLS client certificate (RFC 8705): call \
             with the certificate the tokens were issued for"
                .into(),
        )),
        _ => Ok(()),
    }
}
