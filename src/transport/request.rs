//! The caller facts every front end reads from a request the same way.

use std::net::IpAddr;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

use crate::domain::{Error, Policy};

/// The request's one `authorization` field, `None` when it has none. Sent twice it is an error
/// (INVALID_ARGUMENT, HTTP 400 `invalid_request`), not "the first wins": RFC 9110 section 5.3
/// forbids repeating a field that is not a list, and a proxy that reads the other copy would
/// disagree with tokend about who is calling. gRPC metadata is a header map too.
pub fn authorization(headers: &HeaderMap) -> Result<Option<&HeaderValue>, Error> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Error::invalid(
            "authorization",
            "sent more than once; send exactly one (RFC 9110 section 5.3)",
        ));
    }
    Ok(first)
}

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
    fn authorization_is_one_field_or_none() {
        let mut headers = HeaderMap::new();
        assert!(authorization(&headers).unwrap().is_none());
        headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        assert_eq!(authorization(&headers).unwrap().unwrap(), "Bearer a");
        headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        let err = authorization(&headers).unwrap_err();
        assert!(err.to_string().starts_with("authorization: "), "{err}");
    }

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
