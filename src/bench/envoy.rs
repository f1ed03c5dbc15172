//! What `ext-authz` (and `ext-authz-quota`) sends: a CheckRequest as Envoy's HTTP filter
//! builds one.

use envoy_types::ext_authz::v3::pb::CheckRequest;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as HttpAttributes,
};

/// A CheckRequest shaped as Envoy's HTTP filter sends it: a GET of `path` with a few ordinary
/// headers and the bearer token, from `source` (loopback when the run sets no client address).
pub(crate) fn check_request(token: &str, source: &str, path: &str) -> CheckRequest {
    let headers = [
        (":authority", "api.example.com"),
        (":method", "GET"),
        (":path", path),
        ("accept", "application/json"),
        ("user-agent", "tokend-bench"),
        ("x-request-id", "5f0c9a8e-6a3b-4c1e-9f65-bench"),
    ];
    let mut headers: std::collections::HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    headers.insert("authorization".into(), format!("Bearer {token}"));
    let source = if source.is_empty() {
        "127.0.0.1"
    } else {
        source
    };
    let address = SocketAddress {
        address: source.to_owned(),
        ..Default::default()
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(address)),
                }),
                ..Default::default()
            }),
            request: Some(HttpAttributes {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: path.into(),
                    host: "api.example.com".into(),
                    scheme: "https".into(),
                    protocol: "HTTP/1.1".into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}
