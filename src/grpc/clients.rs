//! `tokend.v1.ClientService`: admin API. Each handler converts, makes one domain call, converts.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::caller;
use super::convert::{self, client_input};
use super::error::{invalid, to_status};
use crate::domain::Tokend;
use crate::proto::client_service_server::ClientService;
use crate::proto::*;

/// Serves `ClientService`.
pub struct ClientApi {
    pub tokend: Arc<Tokend>,
}

const WHAT: &str = "ClientService";

#[tonic::async_trait]
impl ClientService for ClientApi {
    async fn create_client(
        &self,
        request: Request<CreateClientRequest>,
    ) -> Result<Response<CreateClientResponse>, Status> {
        let caller = caller(&self.tokend, &request, WHAT).await?;
        let client = request
            .into_inner()
            .client
            .ok_or_else(|| invalid("client", "is required"))?;
        let input = client_input(client)?;
        let (client, secret) = self
            .tokend
            .clients
            .create(&caller, &input)
            .await
            .map_err(to_status)?;
        Ok(Response::new(CreateClientResponse {
            client: Some(convert::client(&client)),
            client_secret: secret.map(|s| s.expose().to_owned()).unwrap_or_default(),
        }))
    }

    async fn get_client(
        &self,
        request: Request<GetClientRequest>,
    ) -> Result<Response<GetClientResponse>, Status> {
        let caller = caller(&self.tokend, &request, WHAT).await?;
        let client = self
            .tokend
            .clients
            .get(&caller, &request.get_ref().client_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(GetClientResponse {
            client: Some(convert::client(&client)),
        }))
    }

    async fn list_clients(
        &self,
        request: Request<ListClientsRequest>,
    ) -> Result<Response<ListClientsResponse>, Status> {
        let caller = caller(&self.tokend, &request, WHAT).await?;
        let r = request.get_ref();
        let page = self
            .tokend
            .clients
            .list(&caller, &r.tenant, r.page_size, &r.page_token)
            .await
            .map_err(to_status)?;
        Ok(Response::new(ListClientsResponse {
            clients: page.clients.iter().map(convert::client).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_client(
        &self,
        request: Request<UpdateClientRequest>,
    ) -> Result<Response<UpdateClientResponse>, Status> {
        let caller = caller(&self.tokend, &request, WHAT).await?;
        let r = request.into_inner();
        let client = r.client.ok_or_else(|| invalid("client", "is required"))?;
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let id = client.client_id.clone();
        let input = client_input(client)?;
        let updated = self
            .tokend
            .clients
            .update(&caller, &id, &input, &paths)
            .await
            .map_err(to_status)?;
        Ok(Response::new(UpdateClientResponse {
            client: Some(convert::client(&updated)),
        }))
    }

    async fn rotate_client_secret(
        &self,
        request: Request<RotateClientSecretRequest>,
    ) -> Result<Response<RotateClientSecretResponse>, Status> {
        let caller = caller(&self.tokend, &request, WHAT).await?;
        let r = request.into_inner();
        let grace = convert::duration("grace_period", r.grace_period)?.unwrap_or_default();
        let (secret, expire) = self
            .tokend
            .clients
            .rotate_secret(&caller, &r.client_id, grace)
            .await
            .map_err(to_status)?;
        Ok(Response::new(RotateClientSecretResponse {
            client_secret: secret.expose().to_owned(),
            previous_secrets_expire_time: Some(convert::timestamp(expire)),
        }))
    }

    async fn delete_client(
        &self,
        request: Request<DeleteClientRequest>,
    ) -> Result<Response<DeleteClientResponse>, Status> {
        let caller = caller(&self.tokend, &request, WHAT).await?;
        self.tokend
            .clients
            .delete(&caller, &request.get_ref().client_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(DeleteClientResponse {}))
    }

    async fn revoke_client_tokens(
        &self,
        request: Request<RevokeClientTokensRequest>,
    ) -> Result<Response<RevokeClientTokensResponse>, Status> {
        let caller = caller(&self.tokend, &request, WHAT).await?;
        let client = self
            .tokend
            .clients
            .revoke_tokens(&caller, &request.get_ref().client_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(RevokeClientTokensResponse {
            client: Some(convert::client(&client)),
        }))
    }
}
