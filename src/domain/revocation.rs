//! Token revocation (RFC 7009).

use super::client_auth::Endpoint;
use super::clock::to_micros;
use super::error::{Error, Result};
use super::opaque::{OpaqueKind, OpaqueToken};
use super::tokens::{RevokeRequest, TokenIssuer, micros};

impl TokenIssuer {
    /// Token revocation (RFC 7009): the owning client authenticates and names an access or a
    /// refresh token. Unknown, malformed, expired or already revoked tokens answer `Ok`; a
    /// token of another client is refused. A refresh token takes its whole family with it.
    #[tracing::instrument(skip_all, fields(client_id = %request.client_id))]
    pub async fn revoke(&self, request: &RevokeRequest) -> Result<()> {
        if request.token.is_empty() {
            return Err(Error::invalid("token", "is required"));
        }
        let client = self
            .authorize(
                &request.client_id,
                &request.client_secret,
                request.client_address,
                Endpoint::Revocation,
            )
            .await?;
        let now_us = to_micros(self.clock.now());
        let not_yours = || {
            Error::UnauthorizedClient("the token was not issued to the authenticated client".into())
        };
        let changed = if let Some(token) =
            OpaqueToken::from_presented(OpaqueKind::Refresh, &request.token)
        {
            let Some((_, grant)) = self.store.find_refresh(&token.hash()).await? else {
                return Ok(());
            };
            if grant.client_id != client.id.as_str() {
                return Err(not_yours());
            }
            self.store
                .revoke_grant(&grant.grant_id, self.deny_margin(), now_us, &[])
                .await?
        } else if let Some(token) = OpaqueToken::from_presented(OpaqueKind::Access, &request.token)
        {
            let hash = token.hash();
            let Some(row) = self.store.find_opaque(&hash).await? else {
                return Ok(());
            };
            if row.client_id != client.id.as_str() {
                return Err(not_yours());
            }
            self.store
                .revoke_access_token(
                    &row.jti,
                    &row.client_id,
                    row.expire_time_us.saturating_add(micros(self.leeway)),
                    Some(&hash),
                    now_us,
                )
                .await?
        } else {
            let Some(claims) = self.jwt.verify(&request.token) else {
                return Ok(());
            };
            if claims.client_id != client.id.as_str() {
                return Err(not_yours());
            }
            let expire_us = claims
                .exp
                .saturating_add(i64::try_from(self.leeway.as_secs()).unwrap_or(0))
                .saturating_mul(1_000_000);
            if expire_us <= now_us {
                return Ok(());
            }
            self.store
                .revoke_access_token(&claims.jti, &claims.client_id, expire_us, None, now_us)
                .await?
        };
        if changed {
            self.registry.catch_up_after_write().await;
            tracing::info!(client_id = %client.id, "token revoked");
        }
        Ok(())
    }
}
