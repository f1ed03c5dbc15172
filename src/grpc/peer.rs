//! The caller's address for the policy checks: the TCP peer, or behind a trusted proxy what it
//! forwarded in `x-forwarded-for` (the rules are the domain's; this only reads the request).

use std::net::IpAddr;

use tonic::Request;

use crate::domain::Policy;

/// The client's address as the policy sees it; `None` when it cannot be known.
pub fn client_address<T>(policy: &Policy, request: &Request<T>) -> Option<IpAddr> {
    let peer = request.remote_addr().map(|a| a.ip());
    // Bytes that are not UTF-8 become U+FFFD: commas stay commas, so the hops a trusted proxy
    // appended on the right still read, and a client's garbage on the left is never parsed.
    let values: Vec<std::borrow::Cow<'_, str>> = request
        .metadata()
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_encoded_bytes()))
        .collect();
    policy.client_address(peer, values.iter().map(|v| v.as_ref()))
}
