//! The caller's address for the policy checks: the TCP peer, or behind a trusted proxy what it
//! forwarded in `x-forwarded-for`, read as every front end reads it (`transport`).

use std::net::IpAddr;

use tonic::Request;

use crate::domain::Policy;
use crate::transport;

/// The client's address as the policy sees it; `None` when it cannot be known.
pub fn client_address<T>(policy: &Policy, request: &Request<T>) -> Option<IpAddr> {
    let peer = request.remote_addr().map(|a| a.ip());
    transport::client_address(policy, peer, request.metadata().as_ref())
}
