//! `tokend.v1.KeyService`: signing-key administration.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::caller;
use super::convert;
use super::error::to_status;
use crate::domain::{KeyInfo, KeyState, RotateOptions, Tokend};
use crate::proto::key_service_server::KeyService;
use crate::proto::*;

/// Serves `KeyService`.
pub struct KeyApi {
    pub tokend: Arc<Tokend>,
}

const WHAT: &str = "KeyService";

#[tonic::async_trait]
impl KeyService for KeyApi {
    async fn list_signing_keys(
        &self,
        request: Request<ListSigningKeysRequest>,
    ) -> Result<Response<ListSigningKeysResponse>, Status> {
        let caller = caller(&self.tokend, &request, WHAT).await?;
        let keys = self.tokend.keys.list(&caller).await.map_err(to_status)?;
        Ok(Response::new(ListSigningKeysResponse {
            keys: keys.into_iter().map(signing_key).collect(),
        }))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<RotateSigningKeyRequest>,
    ) -> Result<Response<RotateSigningKeyResponse>, Status> {
        let caller = caller(&self.tokend, &request, WHAT).await?;
        let r = request.into_inner();
        let options = RotateOptions {
            prepublish: convert::duration("prepublish", r.prepublish)?,
            retire_previous: r.retire_previous,
        };
        let key = self
            .tokend
            .keys
            .rotate(&caller, options)
            .await
            .map_err(to_status)?;
        Ok(Response::new(RotateSigningKeyResponse {
            key: Some(signing_key(key)),
        }))
    }
}

fn signing_key(k: KeyInfo) -> SigningKey {
    let state = match k.state {
        KeyState::Pending => SigningKeyState::Pending,
        KeyState::Active => SigningKeyState::Active,
        KeyState::Retiring => SigningKeyState::Retiring,
        KeyState::Retired => SigningKeyState::Retired,
    };
    SigningKey {
        kid: k.kid,
        algorithm: k.algorithm,
        state: state.into(),
        create_time: Some(convert::timestamp(k.times.create)),
        activate_time: Some(convert::timestamp(k.times.activate)),
        retire_time: k.times.retire.map(convert::timestamp),
        public_jwk_json: k.public_jwk,
    }
}
