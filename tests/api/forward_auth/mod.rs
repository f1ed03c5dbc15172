//! Forward auth (`/edge/verify`) behind the proxies people run: Debian's nginx and Caddy,
//! started from `examples/` in front of a small upstream, with tokend deciding every request.
//! The same cases run once more against `/edge/verify` directly and once through Envoy's
//! ext_authz Check, and the four front ends must agree on every one.

pub(crate) mod proxies;

use envoy_types::ext_authz::v3::pb::{CheckRequest, HttpResponse};
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as HttpAttributes,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use tokend::config::RouteSettings;
use tokend::proto::Client;

use crate::common::Backend;
use crate::helpers::*;
use proxies::{Answer, Proxy};

/// How a case reaches tokend's verdict.
enum Front {
    Nginx(Proxy),
    Caddy(Proxy),
    /// `/edge/verify` itself, as a proxy on 127.0.0.1 would call it.
    Direct,
    /// Envoy's `Authorization/Check`, CheckRequests built here.
    Check,
}

impl Front {
    fn name(&self) -> &'static str {
        match self {
            Front::Nginx(_) => "nginx",
            Front::Caddy(_) => "caddy",
            Front::Direct => "/edge/verify",
            Front::Check => "ext_authz Check",
        }
    }

    /// `GET path` with `token` and the client's own (forged) `x-tokend-client-id`; the status
    /// and, when let through, the identity the upstream got.
    async fn get(&self, app: &TestApp, path: &str, token: Option<&str>) -> Answer {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![
            ("X-Tokend-Client-Id", "forged"),
            ("X-Tokend-Tenant", "forged"),
        ];
        if let Some(bearer) = &bearer {
            headers.push(("Authorization", bearer));
        }
        match self {
            Front::Nginx(proxy) | Front::Caddy(proxy) => {
                proxies::send(proxy.addr, "GET", path, &headers).await
            }
            Front::Direct => {
                headers.extend([("X-Forwarded-Method", "GET"), ("X-Forwarded-Uri", path)]);
                let mut answer = proxies::send(app.addr, "GET", "/edge/verify", &headers).await;
                assert!(answer.body.is_empty(), "bodies stay empty: {answer:?}");
                if answer.status == 200 {
                    answer.body = identity_as_upstream(&answer.headers);
                }
                answer
            }
            Front::Check => check(app, path, bearer.as_deref()).await,
        }
    }
}

/// The identity headers of a 200 answer, shown as the upstream would receive them.
fn identity_as_upstream(headers: &std::collections::BTreeMap<String, String>) -> String {
    let identity: std::collections::BTreeMap<&String, &String> = headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-tokend-"))
        .collect();
    serde_json::json!({"upstream": true, "headers": identity}).to_string()
}

/// The case through Check: an OK answer as 200 with its upstream headers, a denied one as
/// its HTTP status and headers.
async fn check(app: &TestApp, path: &str, authorization: Option<&str>) -> Answer {
    let mut headers: std::collections::HashMap<String, String> = [
        (":method", "GET"),
        (":path", path),
        (":authority", "api.example.com"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(value) = authorization {
        headers.insert("authorization".into(), value.into());
    }
    let request = CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: "127.0.0.1".into(),
                        port_specifier: Some(PortSpecifier::PortValue(51234)),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            request: Some(HttpAttributes {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: path.into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let response = AuthorizationClient::new(app.channel.clone())
        .check(request)
        .await
        .expect("Check answers")
        .into_inner();
    let pairs = |list: &[envoy_types::ext_authz::v3::pb::HeaderValueOption]| {
        list.iter()
            .filter_map(|h| h.header.as_ref())
            .map(|h| (h.key.to_ascii_lowercase(), h.value.clone()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    match response.http_response {
        Some(HttpResponse::OkResponse(ok)) => {
            let headers = pairs(&ok.headers);
            Answer {
                status: 200,
                body: identity_as_upstream(&headers),
                headers,
            }
        }
        Some(HttpResponse::DeniedResponse(denied)) => Answer {
            status: denied.status.map_or(403, |s| s.code as u16),
            headers: pairs(&denied.headers),
            body: denied.body,
        },
        other => panic!("Check gave no HTTP answer: {other:?}"),
    }
}

fn rule(prefix: &str, scopes: &[&str], requests_per_minute: Option<i64>) -> RouteSettings {
    RouteSettings {
        path_prefix: prefix.into(),
        case_sensitive: false,
        methods: Vec::new(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        audience: None,
        requests_per_minute,
    }
}

/// tokend with both edge front ends on, 127.0.0.1 (the proxies) trusted, and three rules: one
/// needing a scope, one needing another, one allowing each client one call a minute (the
/// server's clock stands still, so the second call is over it).
async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |s| {
        s.ext_authz.enabled = true;
        s.ext_authz.forward_auth = true;
        s.server.trusted_proxies = vec!["127.0.0.1".into()];
        s.ext_authz.routes = vec![
            rule("/admin", &["admin"], None),
            rule("/orders", &["orders:read"], None),
            rule("/limited", &[], Some(1)),
        ];
    })
    .await
}

/// Runs every case through `front`; returns (case, status) in order.
async fn cases(app: &TestApp, admin: &str, front: &Front) -> Vec<(&'static str, u16)> {
    let name = front.name();
    let (_, reader) = app
        .create_client(
            admin,
            client("acme", &format!("reader via {name}"), &["orders:read"]),
        )
        .await;
    let mut seen = Vec::new();
    let mut record = |case: &'static str, answer: &Answer| seen.push((case, answer.status));

    // A live token passes; the upstream gets its identity, not the client's forgery.
    let token = app.token(&reader, &["orders:read"]).await;
    let answer = front.get(app, "/orders/7", Some(&token)).await;
    record("live token", &answer);
    let upstream = answer
        .upstream()
        .unwrap_or_else(|| panic!("{name}: the live token did not pass: {answer:?}"));
    assert_eq!(
        upstream["headers"]["x-tokend-client-id"], reader.client_id,
        "{name}: {upstream}"
    );
    assert_eq!(upstream["headers"]["x-tokend-tenant"], "acme", "{name}");
    assert_eq!(
        upstream["headers"]["x-tokend-scopes"], "orders:read",
        "{name}"
    );

    // No token: 401 with a bare challenge (RFC 6750 section 3.1).
    let answer = front.get(app, "/orders/7", None).await;
    record("no token", &answer);
    let challenge = answer.header("www-authenticate");
    assert!(challenge.starts_with("Bearer"), "{name}: {answer:?}");
    assert!(!challenge.contains("error="), "{name}: {challenge}");
    assert!(answer.upstream().is_none(), "{name}");

    // A garbage token: 401 invalid_token.
    let answer = front.get(app, "/orders/7", Some("garbage")).await;
    record("garbage token", &answer);
    let challenge = answer.header("www-authenticate");
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "{name}: {answer:?}"
    );

    // Revoked: refused on the very next request.
    app.revoke(&reader, &token).await;
    let answer = front.get(app, "/orders/7", Some(&token)).await;
    record("revoked token", &answer);

    // A disabled client's token.
    let (doomed, creds) = app
        .create_client(
            admin,
            client("acme", &format!("doomed via {name}"), &["orders:read"]),
        )
        .await;
    let token = app.token(&creds, &["orders:read"]).await;
    let off = Client {
        client_id: doomed.client_id.clone(),
        active: Some(false),
        ..Client::default()
    };
    app.update_client(admin, off, &["active"]).await.unwrap();
    let answer = front.get(app, "/orders/7", Some(&token)).await;
    record("disabled client", &answer);

    // A rule's missing scope: 403 insufficient_scope.
    let token = app.token(&reader, &["orders:read"]).await;
    let answer = front.get(app, "/admin/users", Some(&token)).await;
    record("missing scope", &answer);
    let challenge = answer.header("www-authenticate");
    assert!(
        challenge.contains("insufficient_scope"),
        "{name}: {answer:?}"
    );

    // A path trick does not slip past the /admin rule.
    let answer = front
        .get(app, "/orders/..;/admin/users", Some(&token))
        .await;
    record("path trick", &answer);
    assert!(answer.upstream().is_none(), "{name}: {answer:?}");

    // A per-client quota: the first call a minute passes, the second is 429 with the wait
    // and the RateLimit headers.
    let answer = front.get(app, "/limited/1", Some(&token)).await;
    record("within quota", &answer);
    let answer = front.get(app, "/limited/2", Some(&token)).await;
    record("over quota", &answer);
    let wait: u64 = answer.header("retry-after").parse().unwrap_or(0);
    assert!((1..=60).contains(&wait), "{name}: {answer:?}");
    assert!(
        answer.header("ratelimit-policy").contains("q=1;w=60"),
        "{name}: {answer:?}"
    );
    assert!(
        answer.header("ratelimit").contains("r=0"),
        "{name}: {answer:?}"
    );
    seen
}

const EXPECTED: [(&str, u16); 9] = [
    ("live token", 200),
    ("no token", 401),
    ("garbage token", 401),
    ("revoked token", 401),
    ("disabled client", 401),
    ("missing scope", 403),
    ("path trick", 403),
    ("within quota", 200),
    ("over quota", 429),
];

async fn nginx_caddy_forward_auth_and_ext_authz_agree(backend: Backend) {
    let app = spawn(backend).await;
    let admin = app.admin("acme").await;
    let upstream = proxies::upstream().await;
    let mut fronts = vec![Front::Direct, Front::Check];
    if let Some(bin) = proxies::find("nginx", &["/usr/sbin/nginx", "/usr/bin/nginx"]) {
        fronts.push(Front::Nginx(proxies::nginx(&bin, app.addr, upstream).await));
    }
    if let Some(bin) = proxies::find("caddy", &["/usr/bin/caddy", "/usr/local/bin/caddy"]) {
        fronts.push(Front::Caddy(proxies::caddy(&bin, app.addr, upstream).await));
    }
    for front in &fronts {
        let seen = cases(&app, &admin, front).await;
        let log = match front {
            Front::Nginx(p) | Front::Caddy(p) => p.log(),
            _ => String::new(),
        };
        assert_eq!(seen, EXPECTED, "{}: {log}", front.name());
    }
}

/// `/edge/verify` is served only when switched on, and believes the original request only
/// from a trusted proxy.
async fn forward_auth_is_off_by_default_and_trusts_only_its_proxies(backend: Backend) {
    let off = TestApp::spawn(backend).await;
    let answer = proxies::send(off.addr, "GET", "/edge/verify", &[]).await;
    assert_eq!(answer.status, 404, "{answer:?}");

    let app = TestApp::spawn_with(backend, |s| {
        s.ext_authz.forward_auth = true;
        s.server.trusted_proxies = vec!["10.9.9.9".into()];
    })
    .await;
    let admin = app.admin("acme").await;
    let (_, reader) = app
        .create_client(&admin, client("acme", "reader", &["orders:read"]))
        .await;
    let token = app.token(&reader, &[]).await;
    let bearer = format!("Bearer {token}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Uri", "/orders/1"),
    ];
    let answer = proxies::send(app.addr, "GET", "/edge/verify", &headers).await;
    assert_eq!(
        answer.status, 403,
        "127.0.0.1 is not a trusted proxy: {answer:?}"
    );
    assert!(answer.body.is_empty(), "bodies stay empty: {answer:?}");
    // ext_authz's gRPC service stays off with only forward auth on.
    let err = AuthorizationClient::new(app.channel.clone())
        .check(CheckRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
}

for_each_backend!(
    nginx_caddy_forward_auth_and_ext_authz_agree,
    forward_auth_is_off_by_default_and_trusts_only_its_proxies,
);
