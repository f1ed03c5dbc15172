//! `tokend.v1.TokenService`: the token endpoint. Each grant RPC builds the domain's typed
//! grant request and calls its one entry point; revocation calls the domain's revocation.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::error::to_status;
use super::peer::{client_address, client_certificate};
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
/// `client_assertion`, and the call's TLS client certificate), as the domain's one proof, with
/// the caller's address.
macro_rules! client_auth {
    ($tokend:expr, $request:expr) => {{
        let address = client_address(&$tokend.policy, &$request);
        let certificate = client_certificate(&$tokend.policy, &$request)?;
        let r = $request.into_inner();
        let presented = Presented {
            client_id: r.client_id.clone(),
            client_secret: Some(r.client_secret.clone()),
            assertion_type: Some(r.client_assertion_type.clone()),
            assertion: Some(r.client_assertion.clone()),
            certificate,
        };
        let who = ClientAuth::presented(presented, address).map_err(to_status)?;
        (who, r)
    }};
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
        let (client, r) = client_auth!(self.tokend, request);
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
        let (client, r) = client_auth!(self.tokend, request);
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
        let (client, r) = client_auth!(self.tokend, request);
        let revoke = RevokeRequest {
            client,
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
        let (client, r) = client_auth!(self.tokend, request);
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
