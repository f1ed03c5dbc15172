//! `tokend.v1.TokenService`: the token endpoint. Each grant RPC builds the domain's typed
//! grant request and calls its one entry point; revocation calls the domain's revocation.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::error::to_status;
use super::peer::client_address;
use crate::domain::{
    ACCESS_TOKEN_TYPE, ClientAuth, Exchange, Grant, GrantRequest, IssuedToken, Presented,
    RevokeRequest, Tokend,
};
use crate::proto::token_service_server::TokenService;
use crate::proto::*;

/// IssueToken's and RefreshToken's answers, which have the same fields.
macro_rules! token_response {
    ($response:ident, $issued:expr) => {{
        let issued: IssuedToken = $issued;
        $response {
            scopes: issued.scopes.to_strings(),
            refresh_token: refresh_text(&issued),
            access_token: issued.access_token,
            token_type: "Bearer".into(),
            expires_in: issued.expires_in,
            refresh_token_expires_in: issued.refresh_expires_in,
        }
    }};
}

/// The client credentials of a request (`client_id`, `client_secret`, `client_assertion_type`,
/// `client_assertion`), as the domain's one proof, from `$address`.
macro_rules! client_auth {
    ($r:expr, $address:expr) => {
        ClientAuth::presented(
            Presented {
                client_id: $r.client_id,
                client_secret: Some($r.client_secret),
                assertion_type: Some($r.client_assertion_type),
                assertion: Some($r.client_assertion),
            },
            $address,
        )
        .map_err(to_status)?
    };
}

/// Serves `TokenService`.
pub struct TokenApi {
    pub tokend: Arc<Tokend>,
}

impl TokenApi {
    async fn grant(
        &self,
        client: ClientAuth,
        scopes: Vec<String>,
        grant: Grant,
    ) -> Result<IssuedToken, Status> {
        let request = GrantRequest {
            client,
            scopes,
            grant,
        };
        self.tokend.tokens.grant(&request).await.map_err(to_status)
    }
}

#[tonic::async_trait]
impl TokenService for TokenApi {
    async fn issue_token(
        &self,
        request: Request<IssueTokenRequest>,
    ) -> Result<Response<IssueTokenResponse>, Status> {
        let address = client_address(&self.tokend.policy, &request);
        let r = request.into_inner();
        let client = client_auth!(r, address);
        let grant = Grant::ClientCredentials {
            audience: r.audience,
        };
        let issued = self.grant(client, r.scopes, grant).await?;
        Ok(Response::new(token_response!(IssueTokenResponse, issued)))
    }

    async fn refresh_token(
        &self,
        request: Request<RefreshTokenRequest>,
    ) -> Result<Response<RefreshTokenResponse>, Status> {
        let address = client_address(&self.tokend.policy, &request);
        let r = request.into_inner();
        let client = client_auth!(r, address);
        let grant = Grant::RefreshToken {
            refresh_token: r.refresh_token,
        };
        let issued = self.grant(client, r.scopes, grant).await?;
        Ok(Response::new(token_response!(RefreshTokenResponse, issued)))
    }

    async fn revoke_token(
        &self,
        request: Request<RevokeTokenRequest>,
    ) -> Result<Response<RevokeTokenResponse>, Status> {
        let address = client_address(&self.tokend.policy, &request);
        let r = request.into_inner();
        let revoke = RevokeRequest {
            client: client_auth!(r, address),
            token: r.token,
            token_type_hint: r.token_type_hint,
        };
        self.tokend
            .tokens
            .revoke(&revoke)
            .await
            .map_err(to_status)?;
        Ok(Response::new(RevokeTokenResponse {}))
    }

    async fn exchange_token(
        &self,
        request: Request<ExchangeTokenRequest>,
    ) -> Result<Response<ExchangeTokenResponse>, Status> {
        let address = client_address(&self.tokend.policy, &request);
        let r = request.into_inner();
        let client = client_auth!(r, address);
        let grant = Grant::TokenExchange(Exchange {
            subject_token: r.subject_token,
            subject_token_type: r.subject_token_type,
            actor_token: r.actor_token,
            actor_token_type: r.actor_token_type,
            requested_token_type: r.requested_token_type,
            audience: r.audience,
        });
        let issued = self.grant(client, r.scopes, grant).await?;
        Ok(Response::new(ExchangeTokenResponse {
            scopes: issued.scopes.to_strings(),
            access_token: issued.access_token,
            issued_token_type: issued.issued_token_type.unwrap_or(ACCESS_TOKEN_TYPE).into(),
            token_type: "Bearer".into(),
            expires_in: issued.expires_in,
        }))
    }
}

/// The refresh token's text, or empty when none was issued (proto3 has no absent string).
fn refresh_text(issued: &IssuedToken) -> String {
    issued
        .refresh_token
        .as_ref()
        .map(|t| t.expose().to_owned())
        .unwrap_or_default()
}
