//! Operations: health, reflection, restart on the same database, the CLI, config errors,
//! graceful shutdown.

use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::common::Backend;
use crate::helpers::*;

async fn health_reports_every_service(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut health = HealthClient::new(app.channel.clone());
    for service in [
        "",
        "tokend.v1.ClientService",
        "tokend.v1.TokenService",
        "tokend.v1.IntrospectionService",
    ] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let err = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // The same over plain HTTP, for probes that do not speak gRPC.
    for path in ["/healthz", "/readyz"] {
        let r = crate::oauth_http::http(app.addr, &format!("GET {path}"), &[], "").await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(r.head.contains("cache-control: no-store"), "{}", r.head);
    }
}

async fn reflection_lists_the_services(backend: Backend) {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let app = TestApp::spawn(backend).await;
    let mut client = ServerReflectionClient::new(app.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "tokend.v1.ClientService",
        "tokend.v1.TokenService",
        "tokend.v1.IntrospectionService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

async fn restart_keeps_clients_keys_and_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin_creds = app.bootstrap("system", "tokend.admin").await;
    let admin = app.token(&admin_creds, &[]).await;
    let introspector = app.introspector("system").await;
    let (c, creds) = app
        .create_client(&admin, client("acme", "svc", &["read"]))
        .await;
    let token = app.token(&creds, &[]).await;
    let jwks_before = app.jwks().await;

    let app = app.restart().await;
    assert!(
        app.introspect(&introspector, &token).await.active,
        "old token survives a restart"
    );
    let fetched = app.get_client(&admin, &c.client_id.clone()).await;
    assert_eq!(fetched.name, "svc");
    app.token(&creds, &[]).await;
    let jwks_after = app.jwks().await;
    assert_eq!(
        jwks_before.keys, jwks_after.keys,
        "same signing key after restart"
    );
}

async fn cli_creates_and_lists_clients(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creds = app.bootstrap("acme", "read:*").await;
    let out = app.cli(&["client", "list", "--tenant", "acme"]).await;
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(line["client_id"], creds.client_id.as_str());
    assert!(
        !stdout.contains(&creds.client_secret),
        "list never shows secrets"
    );
    let out = app
        .cli(&["client", "create", "--tenant", "Bad Tenant", "--name", "x"])
        .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tenant"));
    let out = app.cli(&["migrate"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 20 section 5: `--tenant "$UNSET"` once made a `system` admin.
async fn cli_refuses_an_empty_or_malformed_tenant(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let clients = async || {
        let out = app.cli(&["client", "list"]).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().lines().count()
    };
    let before = clients().await;
    let admin = ["--name", "admin", "--scopes", "tokend.admin"];
    for tenant in ["", "Bad Tenant", "acme\nsystem", "syst\u{e8}me", " system"] {
        let create = [&["client", "create", "--tenant", tenant][..], &admin[..]].concat();
        for args in [&create[..], &["client", "list", "--tenant", tenant][..]] {
            let out = app.cli(args).await;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(64), "{tenant:?} {args:?}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{tenant:?}: {stderr}");
            assert!(
                stderr.starts_with("tokend: --tenant"),
                "{tenant:?}: {stderr}"
            );
            assert!(out.stdout.is_empty(), "{tenant:?}");
        }
    }
    assert_eq!(clients().await, before, "no client was created");
    // A well-formed tenant still works.
    app.bootstrap("acme", "read").await;
    assert_eq!(clients().await, before + 1);
}

/// Behind the CLI's check, the domain itself refuses an operator's client without a tenant:
/// for the operator an empty tenant is a mistake, not a choice of `system`.
async fn the_operator_must_name_a_tenant(backend: Backend) {
    use tokend::domain::{Caller, ClientInput, Error, Tokend};

    let app = TestApp::spawn(backend).await;
    let config = app.settings.resolve().unwrap();
    let store = tokend::server::open_store(&config.database).await.unwrap();
    let domain = config.domain();
    let keks = config.keys.keks.load().unwrap();
    let tokend = Tokend::open(store, keks, domain, app.clock.clone())
        .await
        .unwrap();
    let input = ClientInput {
        name: "admin".into(),
        scopes: vec!["tokend.admin".into()],
        ..ClientInput::default()
    };
    let err = tokend
        .clients
        .create(&Caller::operator(), &input)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { field, .. } if field == "client.tenant"),
        "{err}"
    );
}

async fn graceful_shutdown_stops_serving(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    app.stop().await.expect("run_until_stopped returns Ok");
    let refused = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await;
    assert!(refused.is_err(), "no longer accepting connections");
}

for_each_backend!(
    health_reports_every_service,
    reflection_lists_the_services,
    restart_keeps_clients_keys_and_tokens,
    cli_creates_and_lists_clients,
    cli_refuses_an_empty_or_malformed_tenant,
    the_operator_must_name_a_tenant,
    graceful_shutdown_stops_serving,
);

#[test]
fn invalid_config_exits_64_with_one_line() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokend"))
        .arg("migrate")
        .env("TOKEND__LOG__FORMAT", "xml")
        .env("TOKEND__DATABASE__URL", "sqlite::memory:")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("log.format"), "{stderr}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokend"))
        .arg("migrate")
        .env("TOKEND__DATABASE__URL", "postgres://localhost/x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("keys.kek"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokend"))
        .arg("migrate")
        .env("TOKEND__SERVER__ADRR", "127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(64),
        "unknown keys are typos, not silently ignored"
    );
}
