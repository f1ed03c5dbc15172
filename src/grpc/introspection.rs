//! `tokend.v1.IntrospectionService`: RFC 7662 introspection and the JWKS.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::optional_caller;
use super::convert;
use super::error::to_status;
use crate::domain::Tokend;
use crate::domain::policy::address;
use crate::proto::introspection_service_server::IntrospectionService;
use crate::proto::*;

/// Serves `IntrospectionService`.
pub struct IntrospectionApi {
    pub tokend: Arc<Tokend>,
}

#[tonic::async_trait]
impl IntrospectionService for IntrospectionApi {
    async fn introspect(
        &self,
        request: Request<IntrospectRequest>,
    ) -> Result<Response<IntrospectResponse>, Status> {
        let caller = optional_caller(&self.tokend, &request).await?;
        let r = request.get_ref();
        let client_address = match r.client_address.as_str() {
            "" => None,
            raw => Some(address::parse_address("client_address", raw).map_err(to_status)?),
        };
        let thumbprint = convert::thumbprint(&r.client_certificate_thumbprint)?;
        let active = self
            .tokend
            .introspection
            .introspect(caller.as_ref(), &r.token, client_address, thumbprint)
            .await
            .map_err(to_status)?;
        Ok(Response::new(convert::introspection(active)))
    }

    async fn get_jwks(
        &self,
        _request: Request<GetJwksRequest>,
    ) -> Result<Response<GetJwksResponse>, Status> {
        let introspection = &self.tokend.introspection;
        Ok(Response::new(GetJwksResponse {
            keys: introspection.jwks().into_iter().map(convert::jwk).collect(),
            jwks_json: introspection.jwks_json(),
        }))
    }
}
