//! `tokend.v1.TokenService`: the token endpoint.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::error::to_status;
use super::peer::client_address;
use crate::domain::{
    ACCESS_TOKEN_TYPE, ExchangeRequest, IssuedToken, RefreshRequest, RevokeRequest, TokenRequest,
    Tokend,
};
use crate::proto::token_service_server::TokenService;
use crate::proto::*;

/// Serves `TokenService`.
pub struct TokenApi {
    pub tokend: Arc<Tokend>,
}

#[tonic::async_trait]
impl TokenService for TokenApi {
    async fn issue_token(
        &self,
        request: Request<IssueTokenRequest>,
    ) -> Result<Response<IssueTokenResponse>, Status> {
        let client_address = client_address(&self.tokend.policy, &request);
        let r = request.into_inner();
        let token_request = TokenRequest {
            client_id: r.client_id,
            client_address,
            client_secret: r.client_secret,
            scopes: r.scopes,
            audience: r.audience,
        };
        let issued = self
            .tokend
            .tokens
            .issue(&token_request)
            .await
            .map_err(to_status)?;
        let scopes = issued.scopes.to_strings();
        let refresh_token = refresh_text(&issued);
        Ok(Response::new(IssueTokenResponse {
            access_token: issued.access_token,
            token_type: "Bearer".into(),
            expires_in: issued.expires_in,
            scopes,
            refresh_token,
            refresh_token_expires_in: issued.refresh_expires_in,
        }))
    }

    async fn refresh_token(
        &self,
        request: Request<RefreshTokenRequest>,
    ) -> Result<Response<RefreshTokenResponse>, Status> {
        let client_address = client_address(&self.tokend.policy, &request);
        let r = request.into_inner();
        let refresh_request = RefreshRequest {
            client_id: r.client_id,
            client_address,
            client_secret: r.client_secret,
            refresh_token: r.refresh_token,
            scopes: r.scopes,
        };
        let issued = self
            .tokend
            .tokens
            .refresh(&refresh_request)
            .await
            .map_err(to_status)?;
        let scopes = issued.scopes.to_strings();
        let refresh_token = refresh_text(&issued);
        Ok(Response::new(RefreshTokenResponse {
            access_token: issued.access_token,
            token_type: "Bearer".into(),
            expires_in: issued.expires_in,
            scopes,
            refresh_token,
            refresh_token_expires_in: issued.refresh_expires_in,
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<RevokeTokenRequest>,
    ) -> Result<Response<RevokeTokenResponse>, Status> {
        let client_address = client_address(&self.tokend.policy, &request);
        let r = request.into_inner();
        let revoke_request = RevokeRequest {
            client_id: r.client_id,
            client_address,
            client_secret: r.client_secret,
            token: r.token,
            token_type_hint: r.token_type_hint,
        };
        self.tokend
            .tokens
            .revoke(&revoke_request)
            .await
            .map_err(to_status)?;
        Ok(Response::new(RevokeTokenResponse {}))
    }

    async fn exchange_token(
        &self,
        request: Request<ExchangeTokenRequest>,
    ) -> Result<Response<ExchangeTokenResponse>, Status> {
        let client_address = client_address(&self.tokend.policy, &request);
        let r = request.into_inner();
        let exchange = ExchangeRequest {
            client_id: r.client_id,
            client_address,
            client_secret: r.client_secret,
            subject_token: r.subject_token,
            subject_token_type: r.subject_token_type,
            actor_token: r.actor_token,
            actor_token_type: r.actor_token_type,
            requested_token_type: r.requested_token_type,
            audience: r.audience,
            scopes: r.scopes,
        };
        let issued = self.tokend.exchange(&exchange).await.map_err(to_status)?;
        Ok(Response::new(ExchangeTokenResponse {
            scopes: issued.scopes.to_strings(),
            access_token: issued.access_token,
            issued_token_type: ACCESS_TOKEN_TYPE.into(),
            token_type: "Bearer".into(),
            expires_in: issued.expires_in,
        }))
    }
}

fn refresh_text(issued: &IssuedToken) -> String {
    issued
        .refresh_token
        .as_ref()
        .map(|t| t.expose().to_owned())
        .unwrap_or_default()
}
