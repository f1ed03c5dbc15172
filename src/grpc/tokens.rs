//! `tokend.v1.TokenService`: the token endpoint.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::error::to_status;
use crate::domain::{Error, TokenRequest, Tokend};
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
        let r = request.into_inner();
        let token_request = TokenRequest {
            client_id: r.client_id,
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
        Ok(Response::new(IssueTokenResponse {
            access_token: issued.access_token,
            token_type: "Bearer".into(),
            expires_in: issued.expires_in,
            scopes: issued.scopes.to_strings(),
            refresh_token: String::new(),
        }))
    }

    async fn refresh_token(
        &self,
        _request: Request<RefreshTokenRequest>,
    ) -> Result<Response<RefreshTokenResponse>, Status> {
        Err(to_status(Error::Unimplemented(
            "RefreshToken arrives with the token-lifecycle release".into(),
        )))
    }

    async fn revoke_token(
        &self,
        _request: Request<RevokeTokenRequest>,
    ) -> Result<Response<RevokeTokenResponse>, Status> {
        Err(to_status(Error::Unimplemented(
            "RevokeToken arrives with the token-lifecycle release".into(),
        )))
    }
}
