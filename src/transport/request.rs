//! The caller facts every front end reads from a request the same way.

use std::net::IpAddr;

use http::HeaderMap;

use crate::domain::Policy;

/// The token of an `authorization` value of the `Bearer` scheme (RFC 6750 section 2.1; the
/// scheme name is case-insensitive), trimmed and possibly empty (`Bearer` alone is a bearer
/// credential without a token: invalid, not absent); `None` for another scheme.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The client's address as the policy sees it: the TCP `peer`, or behind a trusted proxy the
/// right-most `x-forwarded-for` hop it vouches for (the rules are the domain's); `None` when
/// it cannot be known. gRPC metadata is a header map too (`MetadataMap::as_ref`).
pub fn client_address(
    policy: &Policy,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
) -> Option<IpAddr> {
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.as_bytes());
    policy.client_address(peer, forwarded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Bearer"), Some(""));
        assert_eq!(bearer_token("Bearer "), Some(""));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token(""), None);
    }
}
