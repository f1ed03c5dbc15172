//! The token endpoint's rules: the client-credentials grant (RFC 6749 section 4.4) producing
//! RFC 9068 JWTs or opaque access tokens, refresh-token rotation with reuse detection (RFC 9700
//! section 4.14.2) and revocation (RFC 7009).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Header;
use sqlx::types::Json;

use super::audit::UsageRecorder;
use super::audit::usage::Counter;
use super::audit::{self, AuditEvent, AuditKind};
use super::claims::{ACCESS_TOKEN_TYP, AccessClaims};
use super::client::{Client, TokenFormat};
use super::client_auth::Endpoint;
use super::clock::{Clock, from_micros, to_micros};
use super::error::{Error, Result};
use super::ids::ClientId;
use super::introspection::JwtVerifier;
use super::keys::{KeyRing, MacKey};
use super::opaque::{OpaqueKind, OpaqueToken};
use super::policy::Policy;
use super::registry::Registry;
use super::scope::ScopeSet;
use super::secret::SecretHasher;
use super::stats::Stats;
use crate::store::{GrantRow, OpaqueRow, RefreshClaim, RefreshRow, Store};

/// A client-credentials request as received. `Debug` redacts the secret.
#[derive(Clone, Default)]
pub struct TokenRequest {
    pub client_id: String,
    /// Where the request came from, as the front end determined it (`None`: unknown).
    pub client_address: Option<IpAddr>,
    /// Wrapped in `ClientSecret` before any use; never logged.
    pub client_secret: String,
    pub scopes: Vec<String>,
    pub audience: Vec<String>,
}

/// A refresh request (RFC 6749 section 6). `Debug` redacts the secret and the token.
#[derive(Clone, Default)]
pub struct RefreshRequest {
    pub client_id: String,
    /// Where the request came from, as the front end determined it (`None`: unknown).
    pub client_address: Option<IpAddr>,
    pub client_secret: String,
    pub refresh_token: String,
    /// Narrower scopes for the new access token; empty means the family's scopes.
    pub scopes: Vec<String>,
}

/// A revocation request (RFC 7009). `Debug` redacts the secret and the token.
#[derive(Clone, Default)]
pub struct RevokeRequest {
    pub client_id: String,
    /// Where the request came from, as the front end determined it (`None`: unknown).
    pub client_address: Option<IpAddr>,
    pub client_secret: String,
    pub token: String,
    /// Only a hint; the token's own shape decides.
    pub token_type_hint: String,
}

/// Freshly issued tokens. `Debug` redacts them.
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: i64,
    pub scopes: ScopeSet,
    /// Present when the client may refresh.
    pub refresh_token: Option<OpaqueToken>,
    /// Seconds until the refresh token expires (0 without one).
    pub refresh_expires_in: i64,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("client_id", &self.client_id)
            .field("client_address", &self.client_address)
            .field("client_secret", &"[redacted]")
            .field("scopes", &self.scopes)
            .field("audience", &self.audience)
            .finish()
    }
}

impl std::fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshRequest")
            .field("client_id", &self.client_id)
            .field("client_address", &self.client_address)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for RevokeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevokeRequest")
            .field("client_id", &self.client_id)
            .field("client_address", &self.client_address)
            .field("token_type_hint", &self.token_type_hint)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// A refresh token that was not exchanged, and what is known of the request.
struct Rejection<'a> {
    client: &'a Client,
    successor: &'a OpaqueToken,
    token: RefreshRow,
    grant: &'a GrantRow,
    address: Option<IpAddr>,
}

/// Authenticates clients, issues, refreshes and revokes their tokens.
pub struct TokenIssuer {
    pub(super) store: Arc<dyn Store>,
    pub(super) hasher: SecretHasher,
    pub(super) keys: Arc<KeyRing>,
    /// Derives refresh successors; the same on every replica and across KEK rotations.
    pub(super) mac: Arc<MacKey>,
    pub(super) jwt: Arc<JwtVerifier>,
    pub(super) registry: Arc<Registry>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) issuer: String,
    pub(super) leeway: Duration,
    /// How long a spent refresh token may be presented again for the same successor.
    pub(super) refresh_retry_window: Duration,
    pub(super) usage: Arc<UsageRecorder>,
    /// Allow-lists, rate limits and the lockout.
    pub(super) policy: Arc<Policy>,
    /// Tokens issued, reuse detected, cache hits, for Prometheus.
    pub(super) stats: Arc<Stats>,
}

impl TokenIssuer {
    /// The client-credentials grant: authenticate, check policy, sign. (Its span is at debug
    /// level: every call already has the request's span, and this path is hot.)
    #[tracing::instrument(level = "debug", skip_all, fields(client_id = %request.client_id))]
    pub async fn issue(&self, request: &TokenRequest) -> Result<IssuedToken> {
        let requested_scopes = ScopeSet::parse("scopes", &request.scopes)
            .map_err(|e| Error::InvalidScope(e.to_string()))?;
        let client = self
            .authorize(
                &request.client_id,
                &request.client_secret,
                request.client_address,
                Endpoint::Token,
            )
            .await?;
        let scopes = client.spec.scopes.grant(&requested_scopes)?;
        let audience = self.grant_audience(&client, &request.audience)?;
        let now = self.clock.now();
        let now_us = to_micros(now);
        let access_exp_us = now_us.saturating_add(micros(client.spec.access_token_ttl));
        // A refresh family first, so the access token can name it.
        let refresh = if client.spec.refresh_token_ttl.is_zero() {
            None
        } else {
            let token = OpaqueToken::generate(OpaqueKind::Refresh)?;
            let grant = GrantRow {
                grant_id: uuid::Uuid::now_v7().simple().to_string(),
                client_id: client.id.to_string(),
                scopes: Json(scopes.to_strings()),
                audiences: Json(audience.clone()),
                create_time_us: now_us,
                token_generation: client.token_generation,
                access_expire_time_us: access_exp_us,
                refresh_expire_time_us: now_us
                    .saturating_add(micros(client.spec.refresh_token_ttl)),
                revoke_time_us: None,
            };
            let first = RefreshRow {
                token_hash: token.hash(),
                grant_id: grant.grant_id.clone(),
                create_time_us: now_us,
                expire_time_us: grant.refresh_expire_time_us,
                use_time_us: None,
            };
            self.store.insert_grant(&grant, &first).await?;
            Some((token, grant.grant_id))
        };
        let gid = refresh.as_ref().map(|(_, g)| g.clone());
        let mut issued = self.mint(&client, &scopes, audience, gid).await?;
        if let Some((token, _)) = refresh {
            issued.refresh_token = Some(token);
            issued.refresh_expires_in = secs(client.spec.refresh_token_ttl);
        }
        self.record_use(&client.id, request.client_address, Counter::TokensIssued);
        Ok(issued)
    }

    /// The refresh grant (RFC 6749 section 6) with rotation: the presented token is spent and
    /// a successor of the same family returned. A spent token presented again by its client
    /// within the retry window, while its successor is unused, gets that same successor (the
    /// client's earlier response was lost); any other reuse revokes the whole family.
    #[tracing::instrument(skip_all, fields(client_id = %request.client_id))]
    pub async fn refresh(&self, request: &RefreshRequest) -> Result<IssuedToken> {
        let requested = ScopeSet::parse("scopes", &request.scopes)
            .map_err(|e| Error::InvalidScope(e.to_string()))?;
        let client = self
            .authorize(
                &request.client_id,
                &request.client_secret,
                request.client_address,
                Endpoint::Token,
            )
            .await?;
        if client.spec.refresh_token_ttl.is_zero() {
            return Err(Error::UnauthorizedClient(
                "refresh tokens are not enabled for this client (its refresh_token_ttl is 0)"
                    .into(),
            ));
        }
        let presented = OpaqueToken::from_presented(OpaqueKind::Refresh, &request.refresh_token)
            .ok_or_else(|| {
                Error::InvalidGrant("refresh_token is not a tokend refresh token".into())
            })?;
        // Narrowing is checked before the token is spent: a refused request must leave the
        // refresh token usable (RFC 6749 section 6). The family's scopes never change.
        if !requested.is_empty()
            && let Some((_, grant)) = self.store.find_refresh(&presented.hash()).await?
            && grant.client_id == client.id.as_str()
        {
            ScopeSet::parse("scopes", &grant.scopes.0)
                .unwrap_or_default()
                .grant(&requested)?;
        }
        let successor = presented.successor(&self.mac);
        let now_us = to_micros(self.clock.now());
        let access_exp_us = now_us.saturating_add(micros(client.spec.access_token_ttl));
        let row = RefreshRow {
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
                    client: &client,
                    successor: &successor,
                    token,
                    grant: &grant,
                    address: request.client_address,
                };
                self.rejected(rejection, now_us).await?;
                grant
            }
        };
        let issued = self
            .mint_refreshed(&client, &grant, &requested, successor)
            .await?;
        self.record_use(&client.id, request.client_address, Counter::Refreshes);
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
            .revoke_grant(&grant.grant_id, leeway, now_us, &audit::rows(&events))
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
        grant: &GrantRow,
        requested: &ScopeSet,
        successor: OpaqueToken,
    ) -> Result<IssuedToken> {
        // The family's scopes, narrowed on request, and never beyond what the client is
        // allowed now.
        let family = ScopeSet::parse("scopes", &grant.scopes.0).unwrap_or_default();
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
                .0
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
        let mut issued = self
            .mint(client, &scopes, audience, Some(grant.grant_id.clone()))
            .await?;
        issued.refresh_token = Some(successor);
        issued.refresh_expires_in = secs(client.spec.refresh_token_ttl);
        Ok(issued)
    }

    /// The client's audiences as [`chosen_audience`] picks them; a client with none gets
    /// tokens for tokend itself.
    fn grant_audience(&self, client: &Client, requested: &[String]) -> Result<Vec<String>> {
        let allowed = &client.spec.audiences;
        if requested.is_empty() && allowed.is_empty() {
            return Ok(vec![self.issuer.clone()]);
        }
        chosen_audience(allowed, requested, "for this client")
    }

    /// How long past a family's recorded last access-token expiry its deny entry is kept: the
    /// leeway verifiers grant, the retry window (a retried exchange mints a little later than
    /// recorded), and a minute for the clock reads between recording and minting.
    pub(super) fn deny_margin(&self) -> i64 {
        micros(self.leeway)
            .saturating_add(micros(self.refresh_retry_window))
            .saturating_add(60_000_000)
    }

    /// An access token of the client's format.
    async fn mint(
        &self,
        client: &Client,
        scopes: &ScopeSet,
        aud: Vec<String>,
        gid: Option<String>,
    ) -> Result<IssuedToken> {
        let claims = self.claims(client, scopes, aud, gid)?;
        self.mint_claims(client, claims, scopes).await
    }

    /// Signs `claims`, or stores them behind an opaque token, as the client's format says.
    pub(super) async fn mint_claims(
        &self,
        client: &Client,
        claims: AccessClaims,
        scopes: &ScopeSet,
    ) -> Result<IssuedToken> {
        let expires_in = claims.exp - claims.iat;
        let access_token = match client.spec.access_token_format {
            TokenFormat::Jwt => {
                self.stats.issued_jwt.inc();
                self.sign(&claims)?
            }
            TokenFormat::Opaque => {
                self.stats.issued_opaque.inc();
                let token = OpaqueToken::generate(OpaqueKind::Access)?;
                let row = OpaqueRow {
                    token_hash: token.hash(),
                    jti: claims.jti.clone(),
                    client_id: claims.client_id.clone(),
                    claims: Json(
                        serde_json::to_value(&claims).map_err(|e| Error::Unexpected(e.into()))?,
                    ),
                    expire_time_us: claims.exp.saturating_mul(1_000_000),
                };
                self.store.insert_opaque(&row).await?;
                token.expose().to_owned()
            }
        };
        Ok(IssuedToken {
            access_token,
            expires_in,
            scopes: scopes.clone(),
            refresh_token: None,
            refresh_expires_in: 0,
        })
    }

    fn claims(
        &self,
        client: &Client,
        scopes: &ScopeSet,
        aud: Vec<String>,
        gid: Option<String>,
    ) -> Result<AccessClaims> {
        let now = self.clock.now().unix_timestamp();
        let ttl = secs(client.spec.access_token_ttl);
        Ok(AccessClaims {
            iss: self.issuer.clone(),
            sub: client.id.to_string(),
            aud,
            exp: now.saturating_add(ttl),
            iat: now,
            nbf: now,
            jti: new_jti()?,
            client_id: client.id.to_string(),
            scope: scopes.to_claim(),
            tenant: client.tenant.to_string(),
            roles: client.spec.roles.iter().cloned().collect(),
            generation: client.token_generation,
            gid,
            act: None,
            src: Vec::new(),
        })
    }

    fn sign(&self, claims: &AccessClaims) -> Result<String> {
        let key = self.keys.signing_key();
        let mut header = Header::new(key.jwt_algorithm());
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, key.encoding_key())
            .map_err(|e| Error::Unexpected(anyhow::anyhow!("signing failed: {e}")))
    }

    /// Notes the client's last use and counts it; written in batches (see `audit::usage`).
    pub(super) fn record_use(&self, id: &ClientId, address: Option<IpAddr>, counter: Counter) {
        self.usage
            .used(id, to_micros(self.clock.now()), address, counter);
    }
}

/// The requested audiences, each one of `allowed` (else `invalid_target`, the refusal saying
/// what they are not allowed `for`), sorted and deduplicated; none requested: all of `allowed`.
pub(super) fn chosen_audience(
    allowed: &BTreeSet<String>,
    requested: &[String],
    what: &str,
) -> Result<Vec<String>> {
    if requested.is_empty() {
        return Ok(allowed.iter().cloned().collect());
    }
    let refused: Vec<&str> = requested
        .iter()
        .filter(|a| !allowed.contains(*a))
        .map(String::as_str)
        .collect();
    if !refused.is_empty() {
        return Err(Error::InvalidTarget(format!(
            "audience not allowed {what}: {}",
            refused.join(" ")
        )));
    }
    let mut aud = requested.to_vec();
    aud.sort();
    aud.dedup();
    Ok(aud)
}

pub(super) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

pub(super) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// A fresh 128-bit token id.
pub(super) fn new_jti() -> Result<String> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| Error::Unexpected(anyhow::anyhow!("system random source failed")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}
