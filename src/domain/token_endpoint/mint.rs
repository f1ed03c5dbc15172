//! Minting access tokens for every grant: the RFC 9068 claims, signing with the current key,
//! or an opaque token whose claims are stored; and the small conversions the grants share.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Header;

use super::claims::{ACCESS_TOKEN_TYP, AccessClaims, Confirmation};
use super::client_auth::ClientAuth;
use super::grant::IssuedToken;
use super::opaque::{OpaqueKind, OpaqueToken};
use super::records::OpaqueRecord;
use super::service::TokenEndpoint;
use crate::domain::audit::usage::Counter;
use crate::domain::clients::{Client, TokenFormat};
use crate::domain::clock::to_micros;
use crate::domain::error::{Error, Result};
use crate::domain::ids::ClientId;
use crate::domain::scope::ScopeSet;

impl TokenEndpoint {
    /// The client's audiences as [`chosen_audience`] picks them; a client with none gets
    /// tokens for tokend itself.
    pub(super) fn grant_audience(
        &self,
        client: &Client,
        requested: &[String],
    ) -> Result<Vec<String>> {
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

    /// An access token of the client's format, bound to the certificate `cnf` names if any.
    pub(super) async fn mint(
        &self,
        client: &Client,
        scopes: &ScopeSet,
        aud: Vec<String>,
        gid: Option<String>,
        cnf: Option<String>,
    ) -> Result<IssuedToken> {
        let mut claims = self.claims(client, scopes, aud, gid)?;
        claims.cnf = cnf.map(|x5t_s256| Confirmation { x5t_s256 });
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
                let row = OpaqueRecord {
                    token_hash: token.hash(),
                    jti: claims.jti.clone(),
                    client_id: claims.client_id.clone(),
                    claims: serde_json::to_value(&claims)
                        .map_err(|e| Error::Unexpected(e.into()))?,
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
            issued_token_type: None,
        })
    }

    pub(super) fn claims(
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
            cnf: None,
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

    /// What the client's new tokens are bound to (RFC 8705 section 3): for a client with
    /// `tls_client_certificate_bound_access_tokens`, the certificate it called with, and
    /// without one no token at all; `None` for any other client.
    pub(super) fn binding(&self, client: &Client, who: &ClientAuth) -> Result<Option<String>> {
        if !client.spec.certificate_bound_tokens {
            return Ok(None);
        }
        match &who.certificate {
            Some(cert) => Ok(Some(cert.thumbprint().to_owned())),
            None => Err(Error::invalid(
                "client_certificate",
                "this client's tokens are bound to its TLS client certificate \
                 (tls_client_certificate_bound_access_tokens): call over mutual TLS",
            )),
        }
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
