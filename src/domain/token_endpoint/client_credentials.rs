//! The client-credentials grant (RFC 6749 section 4.4): tokens for the client itself, as an
//! RFC 9068 JWT or an opaque access token, with a new refresh family when the client may
//! refresh.

use super::grant::IssuedToken;
use super::mint::{micros, secs};
use super::opaque::{OpaqueKind, OpaqueToken};
use super::records::{RefreshFamily, RefreshRecord};
use super::service::TokenEndpoint;
use crate::domain::clients::Client;
use crate::domain::clock::to_micros;
use crate::domain::error::Result;
use crate::domain::scope::ScopeSet;

impl TokenEndpoint {
    /// Grants `requested` (none: all the client's scopes) for `audience`, to a client the
    /// gate admitted; the tokens (and the refresh family) bound to certificate `cnf` if any.
    pub(super) async fn client_credentials(
        &self,
        client: &Client,
        requested: &ScopeSet,
        audience: &[String],
        cnf: Option<String>,
    ) -> Result<IssuedToken> {
        let scopes = client.spec.scopes.grant(requested)?;
        let audience = self.grant_audience(client, audience)?;
        let now_us = to_micros(self.clock.now());
        let access_exp_us = now_us.saturating_add(micros(client.spec.access_token_ttl));
        // A refresh family first, so the access token can name it.
        let refresh = if client.spec.refresh_token_ttl.is_zero() {
            None
        } else {
            let token = OpaqueToken::generate(OpaqueKind::Refresh)?;
            let grant = RefreshFamily {
                grant_id: uuid::Uuid::now_v7().simple().to_string(),
                client_id: client.id.to_string(),
                scopes: scopes.to_strings(),
                audiences: audience.clone(),
                create_time_us: now_us,
                token_generation: client.token_generation,
                access_expire_time_us: access_exp_us,
                refresh_expire_time_us: now_us
                    .saturating_add(micros(client.spec.refresh_token_ttl)),
                revoke_time_us: None,
                cnf_x5t_s256: cnf.clone(),
            };
            let first = RefreshRecord {
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
        let mut issued = self.mint(client, &scopes, audience, gid, cnf).await?;
        if let Some((token, _)) = refresh {
            issued.refresh_token = Some(token);
            issued.refresh_expires_in = secs(client.spec.refresh_token_ttl);
        }
        Ok(issued)
    }
}
