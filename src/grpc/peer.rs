//! The caller's address for the policy checks: the TCP peer, or behind a trusted proxy what it
//! forwarded in `x-forwarded-for` (the rules are the domain's; this only reads the request).

use std::net::IpAddr;

use tonic::Request;

use crate::domain::Policy;

/// The client's address as the policy sees it; `None` when it cannot be known.
pub fn client_address<T>(policy: &Policy, request: &Request<T>) -> Option<IpAddr> {
    let peer = request.remote_addr().map(|a| a.ip());
    let forwarded = request
        .metadata()
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.as_encoded_bytes());
    policy.client_address(peer, forwarded)
}
