//! `GET /healthz` and `GET /readyz`: plain-HTTP probes for load balancers and orchestrators
//! that do not speak gRPC, on the API port and on the health-only port. They read the same
//! statuses as `grpc.health.v1`, so the two never disagree.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CACHE_CONTROL;
use axum::response::IntoResponse;
use axum::routing::get;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::Health;
use tonic_health::server::{HealthReporter, HealthService};

/// Liveness: the process is up and answering (always 200 while it serves at all).
pub const HEALTHZ_PATH: &str = "/healthz";
/// Readiness: 200 while the service it follows is SERVING in `grpc.health.v1`, else 503.
pub const READYZ_PATH: &str = "/readyz";

/// The statuses the probes read: those `reporter` sets, for the service whose health is
/// readiness (the Introspection service: it answers from memory, so it stays ready through a
/// short database outage and turns NOT_SERVING when the replica's view is stale or on
/// shutdown).
#[derive(Clone)]
pub struct Probes {
    health: Arc<HealthService>,
    service: &'static str,
}

impl Probes {
    /// Probes reading what `reporter` sets for `service`.
    pub fn new(reporter: &HealthReporter, service: &'static str) -> Self {
        Self {
            health: Arc::new(HealthService::from_health_reporter(reporter.clone())),
            service,
        }
    }

    /// Whether `service` is SERVING now (an unregistered service is not).
    async fn ready(&self) -> bool {
        let request = tonic::Request::new(HealthCheckRequest {
            service: self.service.to_owned(),
        });
        self.health
            .check(request)
            .await
            .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32)
    }
}

/// The two probe routes.
pub fn routes(probes: Probes) -> Router {
    Router::new()
        .route(HEALTHZ_PATH, get(healthz))
        .route(READYZ_PATH, get(readyz))
        .with_state(probes)
}

async fn healthz() -> impl IntoResponse {
    ([(CACHE_CONTROL, "no-store")], "ok\n")
}

async fn readyz(State(probes): State<Probes>) -> impl IntoResponse {
    if probes.ready().await {
        (StatusCode::OK, [(CACHE_CONTROL, "no-store")], "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(CACHE_CONTROL, "no-store")],
            "not ready\n",
        )
    }
}
