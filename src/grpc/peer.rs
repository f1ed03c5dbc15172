//! The caller's address for the policy checks: the TCP peer, or behind a trusted proxy what it
//! forwarded in `x-forwarded-for` (the rules are the domain's; this only reads the request).

use std::net::IpAddr;

use tonic::Request;

use crate::domain::Policy;

/// The client's address as the policy sees it; `None` when it cannot be known.
pub fn client_address<T>(policy: &Policy, request: &Request<T>) -> Option<IpAddr> {
    let peer = request.remote_addr().map(|a| a.ip());
    // A value that is not ASCII cannot be read; it is passed on as an entry no parser
    // accepts, so a trusted proxy's unreadable header makes the address unknown rather than
    // letting an earlier, client-written part of the chain count.
    let forwarded = request
        .metadata()
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    policy.client_address(peer, forwarded)
}
