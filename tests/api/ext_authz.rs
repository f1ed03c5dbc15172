//! `envoy.service.auth.v3.Authorization/Check`: CheckRequests shaped as Envoy's HTTP filter
//! sends them, and the answers Envoy acts on (upstream headers, 401/403 with RFC 6750
//! challenges), route rules from the config, health and the switch that turns it all off.

use std::collections::HashMap;

use envoy_types::ext_authz::v3::pb::{
    CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction, HttpResponse,
    OkHttpResponse,
};
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as HttpAttributes,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use tokend::config::{RouteSettings, Settings};
use tokend::proto::RevokeTokenRequest;
use tonic::Code;
use tonic::transport::Channel;

use crate::common::Backend;
use crate::helpers::*;

mod paths;
mod quotas;

/// The service as health checks name it.
const SERVICE: &str = "envoy.service.auth.v3.Authorization";

/// A running tokend with `[ext_authz]` on and the given route rules.
async fn spawn(backend: Backend, routes: Vec<RouteSettings>) -> TestApp {
    TestApp::spawn_with(backend, |s| {
        s.ext_authz.enabled = true;
        s.ext_authz.routes = routes;
    })
    .await
}

fn rule(prefix: &str, methods: &[&str], scopes: &[&str], audience: Option<&str>) -> RouteSettings {
    RouteSettings {
        path_prefix: prefix.into(),
        case_sensitive: false,
        methods: methods.iter().map(|m| m.to_string()).collect(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        audience: audience.map(str::to_owned),
        requests_per_minute: None,
    }
}

/// One HTTP request as Envoy describes it, built up by the tests.
struct Envoy {
    method: &'static str,
    path: &'static str,
    headers: HashMap<String, String>,
    source: Option<&'static str>,
}

impl Envoy {
    /// `GET path` from 192.0.2.10, with the headers a browser or client usually sends.
    fn get(path: &'static str) -> Self {
        let headers = [
            (":authority", "api.example.com"),
            (":method", "GET"),
            (":path", path),
            (":scheme", "https"),
            ("accept", "application/json"),
            ("x-request-id", "0b6d2f8e-2f1a-4b8e-9d61-6a2a1c0e7f10"),
        ];
        Self {
            method: "GET",
            path,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            source: Some("192.0.2.10"),
        }
    }

    fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self.headers.insert(":method".into(), method.into());
        self
    }

    fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    fn source_ip(mut self, source: Option<&'static str>) -> Self {
        self.source = source;
        self
    }

    fn request(self) -> CheckRequest {
        let source = self.source.map(|ip| Peer {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: ip.into(),
                    port_specifier: Some(PortSpecifier::PortValue(51234)),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        });
        let http = HttpRequest {
            id: "11743165364543370137".into(),
            method: self.method.into(),
            headers: self.headers,
            path: self.path.into(),
            host: "api.example.com".into(),
            scheme: "https".into(),
            protocol: "HTTP/1.1".into(),
            ..Default::default()
        };
        CheckRequest {
            attributes: Some(AttributeContext {
                source,
                request: Some(HttpAttributes {
                    http: Some(http),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    async fn check(self, app: &TestApp) -> CheckResponse {
        authz(&app.channel)
            .check(self.request())
            .await
            .expect("Check answers")
            .into_inner()
    }
}

fn authz(channel: &Channel) -> AuthorizationClient<Channel> {
    AuthorizationClient::new(channel.clone())
}

/// The OK answer's upstream mutations; panics on a denial.
fn ok(response: CheckResponse) -> OkHttpResponse {
    assert_eq!(
        response.status.as_ref().map(|s| s.code),
        Some(0),
        "{response:?}"
    );
    match response.http_response {
        Some(HttpResponse::OkResponse(ok)) => ok,
        other => panic!("not an OK response: {other:?}"),
    }
}

/// The denied answer's HTTP status, `WWW-Authenticate` and JSON body, after checking the gRPC
/// status code inside it.
fn denied(response: CheckResponse, code: Code) -> (u32, String, serde_json::Value) {
    assert_eq!(
        response.status.as_ref().map(|s| s.code),
        Some(code as i32),
        "{response:?}"
    );
    let Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
        status,
        headers,
        body,
    })) = response.http_response
    else {
        panic!("not a denied response: {:?}", response.http_response);
    };
    let header = |name: &str| {
        headers
            .iter()
            .filter_map(|h| h.header.as_ref())
            .find(|h| h.key == name)
            .map(|h| h.value.clone())
            .unwrap_or_default()
    };
    assert_eq!(header("content-type"), "application/json");
    let body = serde_json::from_str(&body).expect("JSON body");
    (
        status.unwrap().code as u32,
        header("www-authenticate"),
        body,
    )
}

/// The upstream header values an OK answer sets, and checks they overwrite, never append.
#[allow(deprecated)] // reads `append` to check it is left unset: Envoy prefers it when set
fn upstream(ok: &OkHttpResponse) -> HashMap<String, String> {
    ok.headers
        .iter()
        .map(|h| {
            assert_eq!(h.append, None, "the deprecated append flag is left unset");
            assert_eq!(
                h.append_action,
                HeaderAppendAction::OverwriteIfExistsOrAdd as i32
            );
            let h = h.header.as_ref().unwrap();
            (h.key.clone(), h.value.clone())
        })
        .collect()
}

async fn an_active_token_passes_with_its_identity_and_forged_headers_overwritten(backend: Backend) {
    let app = spawn(backend, vec![]).await;
    let admin = app.admin("system").await;
    let (_, creds) = app
        .create_client(
            &admin,
            client("acme", "orders", &["orders:read", "orders:list"]),
        )
        .await;
    let token = app.token(&creds, &[]).await;
    let response = Envoy::get("/orders/7")
        .bearer(&token)
        .header("x-tokend-tenant", "system")
        .header("x-tokend-client-id", "someone-else")
        .check(&app)
        .await;
    let answer = ok(response);
    let headers = upstream(&answer);
    assert_eq!(headers["x-tokend-client-id"], creds.client_id);
    assert_eq!(headers["x-tokend-tenant"], "acme");
    assert_eq!(headers["x-tokend-scopes"], "orders:list orders:read");
    assert_eq!(headers["x-tokend-sub"], creds.client_id);
    assert!(answer.headers_to_remove.is_empty(), "{answer:?}");

    // A token without scopes has no scopes header: a forged one is removed, not passed on.
    let (_, bare) = app.create_client(&admin, client("acme", "bare", &[])).await;
    let token = app.token(&bare, &[]).await;
    let answer = ok(Envoy::get("/")
        .bearer(&token)
        .header("x-tokend-scopes", "orders:admin")
        .check(&app)
        .await);
    assert_eq!(answer.headers_to_remove, ["x-tokend-scopes"]);
    assert!(!upstream(&answer).contains_key("x-tokend-scopes"));
}

async fn raw_headers_are_read_as_well(backend: Backend) {
    use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};

    let app = spawn(backend, vec![]).await;
    let token = app.token(&app.bootstrap("acme", "read").await, &[]).await;
    // With `encode_raw_headers`, Envoy sends `header_map` (raw values) instead of `headers`.
    let raw = |values: &[String]| {
        let mut request = Envoy::get("/").request();
        let http = request
            .attributes
            .as_mut()
            .unwrap()
            .request
            .as_mut()
            .unwrap();
        let http = http.http.as_mut().unwrap();
        let mut headers: Vec<HeaderValue> = std::mem::take(&mut http.headers)
            .into_iter()
            .map(|(key, value)| HeaderValue {
                key,
                raw_value: value.into_bytes(),
                ..Default::default()
            })
            .collect();
        headers.extend(values.iter().map(|v| HeaderValue {
            key: "authorization".into(),
            raw_value: v.clone().into_bytes(),
            ..Default::default()
        }));
        http.header_map = Some(HeaderMap { headers });
        request
    };
    let check = |request| async {
        authz(&app.channel)
            .check(request)
            .await
            .unwrap()
            .into_inner()
    };
    let bearer = format!("Bearer {token}");
    ok(check(raw(std::slice::from_ref(&bearer))).await);
    // Two authorization headers are ambiguous: refused.
    let twice = check(raw(&[bearer.clone(), bearer])).await;
    assert_eq!(denied(twice, Code::Unauthenticated).0, 401);
}

async fn header_names_are_configurable(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.ext_authz.enabled = true;
        s.ext_authz.tenant_header = "x-auth-tenant".into();
    })
    .await;
    let token = app.token(&app.bootstrap("acme", "read").await, &[]).await;
    let headers = upstream(&ok(Envoy::get("/").bearer(&token).check(&app).await));
    assert_eq!(headers["x-auth-tenant"], "acme");
    assert!(headers.contains_key("x-tokend-client-id"));
    assert!(!headers.contains_key("x-tokend-tenant"));
}

async fn missing_and_malformed_tokens_are_401(backend: Backend) {
    let app = spawn(backend, vec![]).await;
    // No credentials at all, or another scheme: a bare challenge (RFC 6750 section 3.1).
    for request in [
        Envoy::get("/orders"),
        Envoy::get("/orders").header("authorization", "Basic dXNlcjpwYXNz"),
    ] {
        let (status, challenge, body) = denied(request.check(&app).await, Code::Unauthenticated);
        assert_eq!(status, 401);
        assert_eq!(challenge, "Bearer realm=\"tokend\"");
        assert_eq!(body["error"], "invalid_token");
    }
    for value in [
        "Bearer",
        "Bearer garbage",
        "bearer a.b.c",
        "Bearer tkd_at_nope",
    ] {
        let response = Envoy::get("/orders")
            .header("authorization", value)
            .check(&app)
            .await;
        let (status, challenge, body) = denied(response, Code::Unauthenticated);
        assert_eq!(status, 401, "{value}");
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert_eq!(body["error"], "invalid_token");
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
    }
}

async fn a_revoked_token_is_refused_at_once(backend: Backend) {
    let app = spawn(backend, vec![]).await;
    let creds = app.bootstrap("acme", "read").await;
    let token = app.token(&creds, &[]).await;
    ok(Envoy::get("/").bearer(&token).check(&app).await);
    app.tokens()
        .revoke_token(RevokeTokenRequest {
            client_id: creds.client_id.clone(),
            client_secret: creds.client_secret.clone(),
            token: token.clone(),
            token_type_hint: String::new(),
            ..Default::default()
        })
        .await
        .expect("revoke");
    let (status, challenge, _) = denied(
        Envoy::get("/").bearer(&token).check(&app).await,
        Code::Unauthenticated,
    );
    assert_eq!(status, 401);
    assert!(challenge.contains("invalid_token"));
}

async fn a_disabled_clients_token_is_refused(backend: Backend) {
    let app = spawn(backend, vec![]).await;
    let admin = app.admin("system").await;
    let (created, creds) = app
        .create_client(&admin, client("acme", "bot", &["read"]))
        .await;
    let token = app.token(&creds, &[]).await;
    ok(Envoy::get("/").bearer(&token).check(&app).await);
    let mut off = created.clone();
    off.active = Some(false);
    app.update_client(&admin, off, &["active"]).await.unwrap();
    let (status, _, _) = denied(
        Envoy::get("/").bearer(&token).check(&app).await,
        Code::Unauthenticated,
    );
    assert_eq!(status, 401);
}

async fn the_clients_allow_list_holds_at_the_edge(backend: Backend) {
    let app = spawn(backend, vec![]).await;
    let admin = app.admin("system").await;
    let mut spec = client("acme", "fenced", &["read"]);
    spec.allowed_cidrs = vec!["10.0.0.0/8".into(), "127.0.0.0/8".into()];
    let (_, creds) = app.create_client(&admin, spec).await;
    let token = app.token(&creds, &[]).await;
    let check = |source| Envoy::get("/").bearer(&token).source_ip(source).check(&app);
    ok(check(Some("10.1.2.3")).await);
    ok(check(Some("::ffff:10.1.2.3")).await);
    for outside in [Some("192.0.2.10"), None] {
        let (status, challenge, _) = denied(check(outside).await, Code::Unauthenticated);
        assert_eq!(status, 401, "{outside:?}");
        assert!(challenge.contains("invalid_token"));
    }
    // A client without a list passes from anywhere, even an unknown address.
    let open = app.token(&app.bootstrap("acme", "read").await, &[]).await;
    ok(Envoy::get("/")
        .bearer(&open)
        .source_ip(None)
        .check(&app)
        .await);
}

async fn a_route_rule_asks_for_scopes(backend: Backend) {
    let app = spawn(
        backend,
        vec![
            rule("/orders", &[], &["orders:read"], None),
            rule("/orders/admin", &[], &["orders:admin", "orders:read"], None),
        ],
    )
    .await;
    let admin = app.admin("system").await;
    let (_, reader) = app
        .create_client(&admin, client("acme", "reader", &["orders:read"]))
        .await;
    let (_, wild) = app
        .create_client(&admin, client("acme", "wild", &["orders:*"]))
        .await;
    let reader = app.token(&reader, &[]).await;
    ok(Envoy::get("/orders/1").bearer(&reader).check(&app).await);
    let response = Envoy::get("/orders/admin/purge")
        .bearer(&reader)
        .check(&app)
        .await;
    let (status, challenge, body) = denied(response, Code::PermissionDenied);
    assert_eq!(status, 403);
    assert_eq!(
        challenge,
        "Bearer realm=\"tokend\", error=\"insufficient_scope\", scope=\"orders:admin orders:read\""
    );
    assert_eq!(body["error"], "insufficient_scope");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("orders:admin")
    );
    // `orders:*` covers every scope the rule asks for; paths without a rule need none.
    let wild = app.token(&wild, &[]).await;
    ok(Envoy::get("/orders/admin/purge")
        .bearer(&wild)
        .check(&app)
        .await);
    let (_, other) = app
        .create_client(&admin, client("acme", "other", &["x"]))
        .await;
    ok(Envoy::get("/health")
        .bearer(&app.token(&other, &[]).await)
        .check(&app)
        .await);
}

async fn a_route_rule_asks_for_an_audience(backend: Backend) {
    let app = spawn(
        backend,
        vec![rule("/billing", &[], &[], Some("https://billing.internal"))],
    )
    .await;
    let admin = app.admin("system").await;
    let mut spec = client("acme", "payer", &["pay"]);
    spec.audiences = vec![
        "https://billing.internal".into(),
        "https://orders.internal".into(),
    ];
    let (_, creds) = app.create_client(&admin, spec).await;
    let billing = app
        .try_token(&creds, &[], &["https://billing.internal"])
        .await
        .unwrap()
        .access_token;
    ok(Envoy::get("/billing/1").bearer(&billing).check(&app).await);
    let orders = app
        .try_token(&creds, &[], &["https://orders.internal"])
        .await
        .unwrap()
        .access_token;
    let (status, challenge, body) = denied(
        Envoy::get("/billing/1").bearer(&orders).check(&app).await,
        Code::PermissionDenied,
    );
    assert_eq!(status, 403);
    assert_eq!(
        challenge,
        "Bearer realm=\"tokend\", error=\"insufficient_scope\""
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("https://billing.internal")
    );
}

async fn a_method_specific_rule_applies_to_its_methods_only(backend: Backend) {
    let app = spawn(
        backend,
        vec![
            rule("/orders", &[], &["orders:read"], None),
            rule("/orders", &["post", "DELETE"], &["orders:write"], None),
        ],
    )
    .await;
    let admin = app.admin("system").await;
    let (_, reader) = app
        .create_client(&admin, client("acme", "reader", &["orders:read"]))
        .await;
    let reader = app.token(&reader, &[]).await;
    ok(Envoy::get("/orders/1").bearer(&reader).check(&app).await);
    for method in ["POST", "DELETE"] {
        let response = Envoy::get("/orders/1")
            .method(method)
            .bearer(&reader)
            .check(&app)
            .await;
        let (status, challenge, _) = denied(response, Code::PermissionDenied);
        assert_eq!(status, 403, "{method}");
        assert!(challenge.ends_with("scope=\"orders:write\""), "{challenge}");
    }
    let (_, writer) = app
        .create_client(&admin, client("acme", "writer", &["orders:write"]))
        .await;
    let writer = app.token(&writer, &[]).await;
    ok(Envoy::get("/orders/1")
        .method("POST")
        .bearer(&writer)
        .check(&app)
        .await);
    // The writer lacks orders:read, which GET on /orders needs.
    let (status, _, _) = denied(
        Envoy::get("/orders/1").bearer(&writer).check(&app).await,
        Code::PermissionDenied,
    );
    assert_eq!(status, 403);
}

async fn health_lists_the_service_only_when_enabled(backend: Backend) {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let status = |channel: Channel| async move {
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: SERVICE.into(),
            })
            .await
    };
    let on = spawn(backend, vec![]).await;
    let serving = status(on.channel.clone())
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(serving, ServingStatus::Serving as i32);

    let off = TestApp::spawn(backend).await;
    let err = status(off.channel.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

async fn the_service_is_unimplemented_when_disabled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(&app.bootstrap("acme", "read").await, &[]).await;
    let err = authz(&app.channel)
        .check(Envoy::get("/").bearer(&token).request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
}

for_each_backend!(
    an_active_token_passes_with_its_identity_and_forged_headers_overwritten,
    raw_headers_are_read_as_well,
    header_names_are_configurable,
    missing_and_malformed_tokens_are_401,
    a_revoked_token_is_refused_at_once,
    a_disabled_clients_token_is_refused,
    the_clients_allow_list_holds_at_the_edge,
    a_route_rule_asks_for_scopes,
    a_route_rule_asks_for_an_audience,
    a_method_specific_rule_applies_to_its_methods_only,
    health_lists_the_service_only_when_enabled,
    the_service_is_unimplemented_when_disabled,
);

#[test]
fn a_bad_ext_authz_config_is_refused_with_exit_64() {
    let mut settings = Settings::default();
    settings.ext_authz.routes = vec![rule("/orders", &["GET"], &["bad scope"], None)];
    let err = settings.validate().unwrap_err().to_string();
    assert!(err.contains("ext_authz.routes[0].scopes[0]"), "{err}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokend"))
        .arg("migrate")
        .env("TOKEND__DATABASE__URL", "sqlite::memory:")
        .env("TOKEND__EXT_AUTHZ__ENABLED", "true")
        .env("TOKEND__EXT_AUTHZ__SCOPES_HEADER", "X Scopes")
        .output()
        .expect("run tokend");
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("ext_authz.scopes_header"), "{stderr}");
}
