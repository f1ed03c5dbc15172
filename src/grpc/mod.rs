//! gRPC transport: thin handlers that convert protobuf to domain calls and back, the one
//! error table, and the router with health and reflection beside tokend's services (and,
//! when enabled, Envoy's external authorization).

mod audit;
mod auth;
mod clients;
mod convert;
pub mod error;
mod ext_authz;
mod introspection;
mod keys;
mod peer;
mod tokens;

use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::AuthorizationServer;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::domain::Tokend;
use crate::proto::audit_service_server::AuditServiceServer;
use crate::proto::client_service_server::ClientServiceServer;
use crate::proto::introspection_service_server::IntrospectionServiceServer;
use crate::proto::key_service_server::KeyServiceServer;
use crate::proto::token_service_server::TokenServiceServer;

pub use audit::AuditApi;
pub use clients::ClientApi;
/// A client as the API sends it, as the domain's raw input: also what the offline `tokend client
/// create` builds from its flags.
pub use convert::{client_input, spec as client_fields};
pub use ext_authz::{ExtAuthzApi, ExtAuthzConfig};
pub use introspection::IntrospectionApi;
pub use keys::KeyApi;
pub use tokens::TokenApi;

/// Fully qualified names of tokend's own services, as reported by health checks.
pub const SERVICE_NAMES: [&str; 5] = [
    "tokend.v1.ClientService",
    "tokend.v1.TokenService",
    INTROSPECTION_SERVICE,
    "tokend.v1.KeyService",
    "tokend.v1.AuditService",
];

/// The service that answers from memory, and so keeps serving while the database is away.
pub const INTROSPECTION_SERVICE: &str = "tokend.v1.IntrospectionService";

/// tokend's services plus `grpc.health.v1.Health` and reflection (v1 and v1alpha), and
/// `envoy.service.auth.v3.Authorization` when `ext_authz` is given. Reflection covers tokend's
/// own and the health service only: `envoy-types` does not export its descriptor set. A request
/// message over `max_request_bytes` is refused (OUT_OF_RANGE) before it is decoded.
pub fn routes(
    tokend: Arc<Tokend>,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    ext_authz: Option<ExtAuthzConfig>,
    max_request_bytes: usize,
) -> anyhow::Result<Routes> {
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    let v1 = reflection.build_v1()?;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    let v1alpha = reflection.build_v1alpha()?;
    let mut routes = Routes::builder();
    routes
        .add_service(health)
        .add_service(v1)
        .add_service(v1alpha)
        .add_service(
            ClientServiceServer::new(ClientApi {
                tokend: tokend.clone(),
            })
            .max_decoding_message_size(max_request_bytes),
        )
        .add_service(
            TokenServiceServer::new(TokenApi {
                tokend: tokend.clone(),
            })
            .max_decoding_message_size(max_request_bytes),
        )
        .add_service(
            KeyServiceServer::new(KeyApi {
                tokend: tokend.clone(),
            })
            .max_decoding_message_size(max_request_bytes),
        )
        .add_service(
            AuditServiceServer::new(AuditApi {
                tokend: tokend.clone(),
            })
            .max_decoding_message_size(max_request_bytes),
        )
        .add_service(
            IntrospectionServiceServer::new(IntrospectionApi {
                tokend: tokend.clone(),
            })
            .max_decoding_message_size(max_request_bytes),
        );
    if let Some(config) = ext_authz {
        routes.add_service(
            AuthorizationServer::new(ExtAuthzApi { tokend, config })
                .max_decoding_message_size(max_request_bytes),
        );
    }
    Ok(routes.routes())
}

/// Health while running: the services that need the database follow `database_up`; the ones
/// that answer from memory (Introspection, Envoy's Authorization) follow `fresh` (the replica's
/// view is within `sync.max_staleness_secs`). The server as a whole ("", for liveness) stays
/// SERVING: a database outage is no reason to restart the process.
pub async fn set_availability_health(
    reporter: &HealthReporter,
    database_up: bool,
    fresh: bool,
    ext_authz: bool,
) {
    let status = |up: bool| {
        if up {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        }
    };
    let extra = ext_authz.then_some(ext_authz::SERVICE_NAME);
    for name in SERVICE_NAMES.into_iter().chain(extra) {
        let from_memory = name == INTROSPECTION_SERVICE || Some(name) == extra;
        let up = if from_memory { fresh } else { database_up };
        reporter.set_service_status(name, status(up)).await;
    }
}

/// Sets every service, and the server as a whole (""), to `status`; with `ext_authz`, Envoy's
/// `Authorization` too.
pub async fn set_health(reporter: &HealthReporter, status: ServingStatus, ext_authz: bool) {
    reporter.set_service_status("", status).await;
    let extra = ext_authz.then_some(ext_authz::SERVICE_NAME);
    for name in SERVICE_NAMES.into_iter().chain(extra) {
        reporter.set_service_status(name, status).await;
    }
}
