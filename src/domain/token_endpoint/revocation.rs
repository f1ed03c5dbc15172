//! Token revocation (RFC 7009), with its `token_type_hint` rule for every front end.

use super::client_auth::{ClientAuth, Endpoint};
use super::mint::micros;
use super::opaque::{OpaqueKind, OpaqueToken};
use super::service::TokenEndpoint;
use crate::domain::clock::to_micros;
use crate::domain::error::{Error, Result};

/// A revocation request (RFC 7009 section 2.1). `Debug` never prints the token.
pub struct RevokeRequest {
    pub client: ClientAuth,
    pub token: String,
    /// As sent; see [`TokenTypeHint`].
    pub token_type_hint: String,
}

impl std::fmt::Debug for RevokeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevokeRequest")
            .field("client", &self.client)
            .field("token_type_hint", &self.token_type_hint)
            .finish_non_exhaustive()
    }
}

/// RFC 7009 section 2.1's `token_type_hint`: only a hint (tokend recognises every token by
/// its own shape), but one naming a type tokend never issues is `unsupported_token_type`
/// (section 2.2.1), on every front end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTypeHint {
    None,
    AccessToken,
    RefreshToken,
}

impl TokenTypeHint {
    /// Empty (no hint), `access_token` or `refresh_token`.
    pub fn parse(raw: &str) -> Result<Self> {
        match raw {
            "" => Ok(Self::None),
            "access_token" => Ok(Self::AccessToken),
            "refresh_token" => Ok(Self::RefreshToken),
            other => Err(Error::UnsupportedTokenType(format!(
                "token_type_hint {other} is not a token type tokend issues: use access_token or \
                 refresh_token"
            ))),
        }
    }
}

impl TokenEndpoint {
    /// Token revocation (RFC 7009): the owning client authenticates, then names an access or a
    /// refresh token (and perhaps a hint, judged only after authentication). Unknown,
    /// malformed, expired or already revoked tokens answer `Ok`; a token of another client is
    /// refused. A refresh token takes its whole family with it.
    #[tracing::instrument(skip_all, fields(client_id = %request.client.logged_id()))]
    pub async fn revoke(&self, request: &RevokeRequest) -> Result<()> {
        // The client first (RFC 7009 section 2.1): a caller that cannot authenticate learns
        // nothing from how its request would have been judged.
        let client = self.admit(&request.client, Endpoint::Revocation).await?;
        let token = request.token.as_str();
        if token.is_empty() {
            return Err(Error::invalid("token", "is required"));
        }
        TokenTypeHint::parse(&request.token_type_hint)?;
        let now_us = to_micros(self.clock.now());
        let not_yours = || {
            Error::UnauthorizedClient("the token was not issued to the authenticated client".into())
        };
        let changed = if let Some(token) = OpaqueToken::from_presented(OpaqueKind::Refresh, token) {
            let Some((_, grant)) = self.store.find_refresh(&token.hash()).await? else {
                return Ok(());
            };
            if grant.client_id != client.id.as_str() {
                return Err(not_yours());
            }
            self.store
                .revoke_grant(&grant.grant_id, self.deny_margin(), now_us, &[])
                .await?
        } else if let Some(token) = OpaqueToken::from_presented(OpaqueKind::Access, token) {
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
            let Some(claims) = self.jwt.verify(token) else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_tokend_does_not_issue_are_unsupported() {
        assert_eq!(TokenTypeHint::parse("").unwrap(), TokenTypeHint::None);
        assert_eq!(
            TokenTypeHint::parse("refresh_token").unwrap(),
            TokenTypeHint::RefreshToken
        );
        let err = TokenTypeHint::parse("id_token").unwrap_err();
        assert_eq!(err.oauth2_code(), Some("unsupported_token_type"));
    }
}
