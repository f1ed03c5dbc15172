//! The caller's address for the policy checks (the TCP peer, or behind a trusted proxy what it
//! forwarded in `x-forwarded-for`) and its client certificate (the TLS peer's, or behind a
//! trusted proxy its `x-forwarded-client-cert`), read as every front end reads them
//! (`transport`).

use std::net::IpAddr;
use std::sync::Arc;

use tonic::{Request, Status};

use super::error::to_status;
use crate::domain::{ClientCertificate, Policy};
use crate::transport;

/// The client's address as the policy sees it; `None` when it cannot be known.
pub fn client_address<T>(policy: &Policy, request: &Request<T>) -> Option<IpAddr> {
    let peer = request.remote_addr().map(|a| a.ip());
    transport::client_address(policy, peer, request.metadata().as_ref())
}

/// The client certificate of the call: the TLS peer's, or behind a trusted proxy the one it
/// forwarded in `x-forwarded-client-cert` (the rules are `transport::client_certificate`'s).
pub fn client_certificate<T>(
    policy: &Policy,
    request: &Request<T>,
) -> Result<Option<Arc<ClientCertificate>>, Status> {
    let peer = request.remote_addr().map(|a| a.ip());
    let certs = request.peer_certs();
    let leaf = certs.as_ref().and_then(|c| c.first()).map(|c| c.as_ref());
    transport::client_certificate(policy, peer, leaf, request.metadata().as_ref())
        .map_err(to_status)
}
