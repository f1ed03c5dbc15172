//! `tokend admin`: the real binary against a running server over gRPC, as an operator uses it,
//! with the admin's client credentials from the environment.

use serde_json::Value;
use tokend::proto::Client;
use tonic::Code;

use crate::common::Backend;
use crate::helpers::*;

/// `tokend admin <args>` as `admin`, against `app`; the output and exit code.
pub(crate) async fn admin_cli(app: &TestApp, admin: &Creds, args: &[&str]) -> std::process::Output {
    let server = format!("http://{}", app.addr);
    let args = [&["admin"][..], args].concat();
    app.cli_env(
        &args,
        &[
            ("TOKEND_SERVER", server.as_str()),
            ("TOKEND_CLIENT_ID", admin.client_id.as_str()),
            ("TOKEND_CLIENT_SECRET", admin.client_secret.as_str()),
        ],
    )
    .await
}

#[track_caller]
pub(crate) fn ok_json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{} / {}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// A server, a system admin's credentials (for the CLI), and a client `billing` of `acme`.
struct Scene {
    app: TestApp,
    root: Creds,
    billing: Client,
    creds: Creds,
}

async fn scene(backend: Backend) -> Scene {
    let app = TestApp::spawn(backend).await;
    let root = app.bootstrap("system", "tokend.admin").await;
    let admin = app.admin("acme").await;
    let (billing, creds) = app
        .create_client(&admin, client("acme", "billing", &["read:*"]))
        .await;
    Scene {
        app,
        root,
        billing,
        creds,
    }
}

async fn clients_are_administered_from_a_terminal(backend: Backend) {
    let Scene {
        app,
        root,
        billing,
        creds,
    } = scene(backend).await;
    let id = billing.client_id.as_str();

    let listed = ok_json(&admin_cli(&app, &root, &["clients", "list", "--output", "json"]).await);
    let ids: Vec<&str> = listed["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&id), "{listed}");
    let table = admin_cli(&app, &root, &["clients", "list", "--tenant", "acme"]).await;
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.starts_with("CLIENT_ID"), "{table}");
    assert!(
        table.contains("billing") && table.contains("active"),
        "{table}"
    );

    let shown = ok_json(&admin_cli(&app, &root, &["clients", "get", id, "--output", "json"]).await);
    assert_eq!(shown["name"], "billing");
    assert_eq!(shown["tenant"], "acme");

    // Disable: the client's tokens stop working at once; enable lets it in again.
    let token = app.token(&creds, &[]).await;
    let introspector = app.introspector("acme").await;
    let off =
        ok_json(&admin_cli(&app, &root, &["clients", "disable", id, "--output", "json"]).await);
    assert_eq!(off["active"], false);
    assert!(!app.introspect(&introspector, &token).await.active);
    let on = ok_json(&admin_cli(&app, &root, &["clients", "enable", id, "--output", "json"]).await);
    assert_eq!(on["active"], true);

    // Rotate with the new secret written to a file only its owner reads; the old one is gone.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("billing.secret");
    let rotate = [
        "clients",
        "rotate-secret",
        id,
        "--grace-period",
        "0",
        "--secret-file",
        file.to_str().unwrap(),
        "--output",
        "json",
    ];
    let rotated = ok_json(&admin_cli(&app, &root, &rotate).await);
    assert!(
        rotated["client_secret"].is_null(),
        "never on stdout with --secret-file"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let new = Creds {
        client_secret: std::fs::read_to_string(&file).unwrap().trim().to_owned(),
        ..creds.clone()
    };
    app.try_token(&new, &[], &[]).await.expect("the new secret");
    let err = app.try_token(&creds, &[], &[]).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // Revoke every token; delete; then it is not found (exit 69).
    let token = app.token(&new, &[]).await;
    ok_json(
        &admin_cli(
            &app,
            &root,
            &["clients", "revoke-tokens", id, "--output", "json"],
        )
        .await,
    );
    assert!(!app.introspect(&introspector, &token).await.active);
    let deleted = admin_cli(&app, &root, &["clients", "delete", id]).await;
    assert!(deleted.status.success());
    assert_eq!(
        String::from_utf8(deleted.stdout).unwrap(),
        format!("deleted {id}\n")
    );
    let gone = admin_cli(&app, &root, &["clients", "get", id]).await;
    assert_eq!(gone.status.code(), Some(69));
    let stderr = String::from_utf8_lossy(&gone.stderr);
    assert!(
        stderr.starts_with("tokend admin: getting the client: NotFound"),
        "{stderr}"
    );
}

async fn failures_are_one_line_with_a_distinct_exit_code(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let root = app.bootstrap("system", "tokend.admin").await;
    let server = format!("http://{}", app.addr);
    // No credentials at all: usage (64), naming what to set.
    let out = app
        .cli_env(
            &["admin", "clients", "list"],
            &[("TOKEND_SERVER", server.as_str())],
        )
        .await;
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOKEND_CLIENT_ID"));
    // A wrong secret: authentication (77), with the OAuth 2.0 code.
    let wrong = Creds {
        client_secret: "tkd_cs_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".into(),
        ..root.clone()
    };
    let out = admin_cli(&app, &wrong, &["clients", "list"]).await;
    assert_eq!(out.status.code(), Some(77));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid_client") && stderr.lines().count() == 1,
        "{stderr}"
    );
    // A client without tokend.admin: refused by the server (77).
    let reader = app.bootstrap("acme", "read").await;
    let out = admin_cli(&app, &reader, &["clients", "list"]).await;
    assert_eq!(
        out.status.code(),
        Some(77),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nobody listening: unavailable (75).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = app
        .cli_env(
            &["admin", "clients", "list"],
            &[
                ("TOKEND_SERVER", nowhere.as_str()),
                ("TOKEND_CLIENT_ID", root.client_id.as_str()),
                ("TOKEND_CLIENT_SECRET", root.client_secret.as_str()),
            ],
        )
        .await;
    assert_eq!(out.status.code(), Some(75));
    // A secret from a file works like one from the environment.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin.secret");
    std::fs::write(&file, format!("{}\n", root.client_secret)).unwrap();
    let out = app
        .cli_env(
            &[
                "admin",
                "clients",
                "list",
                "--client-secret-file",
                file.to_str().unwrap(),
            ],
            &[
                ("TOKEND_SERVER", server.as_str()),
                ("TOKEND_CLIENT_ID", root.client_id.as_str()),
            ],
        )
        .await;
    assert!(
        out.status.success(),
        "{} / {}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Create with the client flags as the README names them, then an update that sends only the
/// flags given (the field mask built for the user).
async fn create_and_update_take_the_client_fields_as_flags(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let root = app.bootstrap("system", "tokend.admin").await;
    let create = [
        "clients",
        "create",
        "--tenant",
        "acme",
        "--name",
        "payroll-sync",
        "--description",
        "nightly payroll export",
        "--scopes",
        "read:payroll,write:exports",
        "--audiences",
        "https://payroll.internal",
        "--roles",
        "exporter",
        "--rate-limit",
        "5000",
        "--refresh-rate-limit",
        "30",
        "--api-rate-limit",
        "1000",
        "--allowed-cidrs",
        "127.0.0.0/8,10.0.1.6/32",
        "--access-token-ttl",
        "15m",
        "--refresh-token-ttl",
        "7d",
        "--metadata",
        "team=payments",
        "--output",
        "json",
    ];
    let created = ok_json(&admin_cli(&app, &root, &create).await);
    assert_eq!(created["tenant"], "acme");
    assert_eq!(created["rate_limit_per_minute"], 5000);
    assert_eq!(created["refresh_rate_limit_per_minute"], 30);
    assert_eq!(created["api_rate_limit_per_minute"], 1000);
    assert_eq!(created["access_token_ttl_secs"], 900);
    assert_eq!(created["refresh_token_ttl_secs"], 7 * 86_400);
    let cidrs = created["allowed_cidrs"].as_array().unwrap();
    assert!(
        cidrs.contains(&"10.0.1.6/32".into()) && cidrs.len() == 2,
        "{cidrs:?}"
    );
    assert_eq!(created["metadata"]["team"], "payments");
    let secret = created["client_secret"]
        .as_str()
        .expect("shown once")
        .to_owned();
    let id = created["client_id"].as_str().unwrap().to_owned();
    let creds = Creds {
        client_id: id.clone(),
        client_secret: secret,
    };
    let issued = app.try_token(&creds, &["read:payroll"], &[]).await.unwrap();
    assert!(issued.refresh_token.len() > 10, "refresh tokens for 7d");

    // Only the rate limit and the audiences change; the rest stays.
    let update = [
        "clients",
        "update",
        id.as_str(),
        "--rate-limit",
        "1000",
        "--audiences",
        "",
        "--output",
        "json",
    ];
    let updated = ok_json(&admin_cli(&app, &root, &update).await);
    assert_eq!(updated["rate_limit_per_minute"], 1000);
    assert_eq!(updated["audiences"], serde_json::json!([]));
    assert_eq!(
        updated["scopes"],
        serde_json::json!(["read:payroll", "write:exports"])
    );
    assert_eq!(updated["access_token_ttl_secs"], 900);
    // An update with nothing to change, and a refused value, are usage errors naming why.
    let out = admin_cli(&app, &root, &["clients", "update", id.as_str()]).await;
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to change"));
    let out = admin_cli(
        &app,
        &root,
        &[
            "clients",
            "update",
            id.as_str(),
            "--allowed-cidrs",
            "10.0.0.0/33",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("InvalidArgument") && stderr.contains("client.allowed_cidrs"),
        "{stderr}"
    );
}

async fn keys_audit_and_usage_from_a_terminal(backend: Backend) {
    let Scene {
        app,
        root,
        billing,
        creds,
    } = scene(backend).await;
    let id = billing.client_id.as_str();
    app.token(&creds, &[]).await;
    app.token(&creds, &[]).await;

    let keys = ok_json(&admin_cli(&app, &root, &["keys", "list", "--output", "json"]).await);
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    assert_eq!(keys["keys"][0]["state"], "active");
    let rotated = ok_json(&admin_cli(&app, &root, &["keys", "rotate", "--output", "json"]).await);
    let new_kid = rotated["keys"][0]["kid"].as_str().unwrap().to_owned();
    let keys = ok_json(&admin_cli(&app, &root, &["keys", "list", "--output", "json"]).await);
    let kids: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.len() == 2 && kids.contains(&new_kid.as_str()),
        "{keys}"
    );

    let usage = ok_json(
        &admin_cli(
            &app,
            &root,
            &["usage", id, "--days", "0", "--output", "json"],
        )
        .await,
    );
    assert_eq!(usage["days"][0]["tokens_issued"], 2, "{usage}");
    assert_eq!(usage["days"][0]["api_calls_allowed"], 0, "{usage}");
    assert_eq!(usage["days"][0]["api_calls_throttled"], 0, "{usage}");
    let chart = admin_cli(&app, &root, &["usage", id, "--days", "0"]).await;
    let chart = String::from_utf8(chart.stdout).unwrap();
    assert!(
        chart.contains("tokens issued per day") && chart.contains("##"),
        "{chart}"
    );
    assert!(
        chart.contains(" API ") && chart.contains("THROTTLED"),
        "{chart}"
    );

    let listed = ok_json(
        &admin_cli(
            &app,
            &root,
            &[
                "audit",
                "list",
                "--client",
                id,
                "--kind",
                "client_created",
                "--output",
                "json",
            ],
        )
        .await,
    );
    assert_eq!(listed["events"][0]["kind"], "client_created", "{listed}");
    assert_eq!(listed["events"][0]["details"]["name"], "billing");
    let tail = admin_cli(
        &app,
        &root,
        &[
            "audit",
            "tail",
            "--kind",
            "client_created",
            "--since",
            "1h",
            "--for",
            "1s",
            "--interval",
            "1s",
            "--output",
            "json",
        ],
    )
    .await;
    let lines: Vec<Value> = String::from_utf8(ok_out(&tail))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().any(|e| e["client_id"] == id),
        "the creation of billing: {lines:?}"
    );
    let out = admin_cli(&app, &root, &["audit", "list", "--kind", "nope"]).await;
    assert_eq!(
        out.status.code(),
        Some(64),
        "an unknown kind is a usage error"
    );
}

/// `tokend completions bash` prints a script that knows the admin commands and their flags.
async fn shell_completions_know_the_admin_commands(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let out = app.cli(&["completions", "bash"]).await;
    let script = String::from_utf8(ok_out(&out)).unwrap();
    assert!(script.contains("_tokend()"), "a bash completion function");
    for word in [
        "admin",
        "clients",
        "rotate-secret",
        "--rate-limit",
        "--client-secret-file",
    ] {
        assert!(script.contains(word), "{word}");
    }
    let out = app.cli(&["completions", "tcsh"]).await;
    assert_eq!(
        out.status.code(),
        Some(64),
        "an unknown shell is a usage error"
    );
}

/// Over TLS (`https://`, `--ca-cert`), and with a client certificate (`--client-cert`,
/// `--client-key`) to a server that asks for one.
async fn the_admin_cli_speaks_tls_and_mtls(backend: Backend) {
    use crate::mtls_clients::{Ca, SPIFFE_ID, mtls_app};
    let ca = Ca::new("ops CA");
    let (app, _files) = mtls_app(backend, &ca).await;
    let root = app.bootstrap("system", "tokend.admin").await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let leaf = ca.workload(SPIFFE_ID);
    let (cert_file, key_file) = (dir.path().join("me.crt"), dir.path().join("me.key"));
    std::fs::write(&cert_file, &leaf.cert).unwrap();
    std::fs::write(&key_file, &leaf.key).unwrap();
    let server = format!("https://localhost:{}", app.addr.port());
    let env = [
        ("TOKEND_SERVER", server.as_str()),
        ("TOKEND_CLIENT_ID", root.client_id.as_str()),
        ("TOKEND_CLIENT_SECRET", root.client_secret.as_str()),
    ];
    let ca_arg = ca_file.to_str().unwrap();
    let tls = ["admin", "keys", "list", "--ca-cert", ca_arg];
    let out = app.cli_env(&tls, &env).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mtls = [
        &tls[..],
        &[
            "--client-cert",
            cert_file.to_str().unwrap(),
            "--client-key",
            key_file.to_str().unwrap(),
        ],
    ]
    .concat();
    let out = app.cli_env(&mtls, &env).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the CA, the server's certificate is not trusted: unreachable, said so.
    let out = app.cli_env(&["admin", "keys", "list"], &env).await;
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `audit tail` outlives its admin token: it fetches a new one shortly before the old expires.
async fn a_long_tail_renews_its_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let system = app.admin("system").await;
    let mut short = client("system", "short-lived admin", &["tokend.admin"]);
    short.access_token_ttl = Some(prost_types::Duration {
        seconds: 61,
        nanos: 0,
    });
    let (_, creds) = app.create_client(&system, short).await;
    let server = format!("http://{}", app.addr);
    let tail = [
        "admin",
        "audit",
        "tail",
        "--for",
        "4s",
        "--interval",
        "1s",
        "--output",
        "json",
    ];
    let env = [
        ("TOKEND_SERVER", server.as_str()),
        ("TOKEND_CLIENT_ID", creds.client_id.as_str()),
        ("TOKEND_CLIENT_SECRET", creds.client_secret.as_str()),
    ];
    // Two seconds in, the server's clock jumps past the first token's expiry.
    let (out, ()) = tokio::join!(app.cli_env(&tail, &env), async {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        app.advance(std::time::Duration::from_secs(300));
    });
    assert!(
        out.status.success(),
        "the tail kept going: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[track_caller]
fn ok_out(out: &std::process::Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.clone()
}

for_each_backend!(
    a_long_tail_renews_its_token,
    the_admin_cli_speaks_tls_and_mtls,
    shell_completions_know_the_admin_commands,
    keys_audit_and_usage_from_a_terminal,
    create_and_update_take_the_client_fields_as_flags,
    clients_are_administered_from_a_terminal,
    failures_are_one_line_with_a_distinct_exit_code,
);
