//! `tokend bench`: in process through `tokend::bench::run`, and as the binary. Short phases
//! only, and never a speed threshold: these check that every RPC is driven, answered correctly
//! and reported, and that the temporary clients are gone afterwards.

use std::time::Duration;

use secrecy::SecretString;
use tokend::bench::{self, BenchOptions, BenchReport, Credentials, Rpc};
use tokend::proto::ListClientsRequest;

use crate::common::Backend;
use crate::helpers::*;

/// Options for a quick run against `app` as `admin`: 200 requests per phase, no warm-up.
fn quick(app: &TestApp, admin: &Creds, rpcs: &[Rpc]) -> BenchOptions {
    BenchOptions {
        target: format!("http://{}", app.addr),
        rpcs: rpcs.to_vec(),
        concurrency: 4,
        connections: 2,
        requests: Some(200),
        warmup: Duration::ZERO,
        cold_tokens: 200,
        admin: Some(Credentials {
            client_id: admin.client_id.clone(),
            client_secret: SecretString::from(admin.client_secret.clone()),
        }),
        progress: false,
        ..BenchOptions::default()
    }
}

/// Every phase did work, without a single error, and has its ratio to health.
fn assert_clean(report: &BenchReport, names: &[&str]) {
    let got: Vec<&str> = report.results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(got, names);
    for r in &report.results {
        assert_eq!(r.requests, 200, "{}: requests", r.name);
        assert!(r.errors.is_empty(), "{}: errors {:?}", r.name, r.errors);
        assert!(r.rps > 0.0, "{}: rps", r.name);
        assert!(r.latency_us.max >= r.latency_us.p50, "{}: latency", r.name);
        assert!(r.ratio_to_health.is_some_and(|x| x > 0.0), "{}", r.name);
    }
}

/// The ids of every client the admin can see.
async fn client_ids(app: &TestApp, admin: &Creds) -> Vec<String> {
    let token = app.token(admin, &[]).await;
    let request = ListClientsRequest {
        page_size: 1000,
        ..Default::default()
    };
    let listed = app.clients().list_clients(authed(request, &token)).await;
    let clients = listed.expect("list clients").into_inner().clients;
    clients.into_iter().map(|c| c.client_id).collect()
}

/// A loopback URL on a port free now, for the workload issuer `issue-federated` plays.
fn free_issuer_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

async fn every_rpc_runs_clean_and_cleans_up(backend: Backend) {
    // `ext-authz` is among them: Envoy's Check is served only when enabled; and
    // `issue-federated`, whose issuer (played by the bench) tokend must trust.
    let issuer = free_issuer_url();
    let trusted = tokend::config::IssuerSettings {
        issuer: issuer.clone(),
        jwks_uri: Some(format!("{issuer}/jwks")),
        audiences: vec!["tokend-bench".into()],
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, |s| {
        s.ext_authz.enabled = true;
        s.federation.issuers = vec![trusted];
    })
    .await;
    let admin = app.bootstrap("system", "tokend.admin").await;
    // The server's clock ten minutes ahead of the bench's: assertions and the workload token
    // are signed at the server's time, or they would all be refused as expired.
    app.advance(Duration::from_secs(600));
    let mut options = quick(&app, &admin, &Rpc::ALL);
    options.federation_issuer = Some(issuer);
    let report = bench::run(options).await.expect("bench run");
    let names = Rpc::ALL.map(Rpc::name);
    assert_clean(&report, &names);
    assert_eq!(report.results[0].ratio_to_health, Some(1.0));

    let cold = &report.results[3];
    assert!(cold.ratio_to_verify.is_some_and(|x| x > 0.0));
    let verify = report.verify_baseline.as_ref().expect("verify baseline");
    assert!(verify.per_sec_one_thread > 0.0);
    assert_eq!(verify.algorithm, "EdDSA");
    assert!(bench::render_table(&report).contains("introspect-cold"));

    assert_eq!(
        client_ids(&app, &admin).await,
        vec![admin.client_id.clone()]
    );
}

async fn bad_secrets_round_reports_their_rate(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.bootstrap("system", "tokend.admin").await;
    let mut options = quick(&app, &admin, &[Rpc::Introspect, Rpc::Issue]);
    options.background_bad_secrets = 2;
    // From another address, as an attacker's would be: the lockout stops the wrong secrets
    // (its address) without stopping the measured client (known from its own address).
    options.bad_secrets_from = Some("127.0.0.2".parse().unwrap());
    let report = bench::run(options).await.expect("bench run");
    let names = [
        "health",
        "introspect",
        "issue",
        "introspect+bad-secrets",
        "issue+bad-secrets",
    ];
    assert_clean(&report, &names);
    for r in &report.results {
        let under_load = r.name.ends_with("+bad-secrets");
        assert_eq!(r.bad_secret_rps.is_some(), under_load, "{}", r.name);
    }
    assert_eq!(
        client_ids(&app, &admin).await,
        vec![admin.client_id.clone()]
    );
}

async fn client_policy_run_is_clean(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.bootstrap("system", "tokend.admin").await;
    let mut options = quick(
        &app,
        &admin,
        &[
            Rpc::Introspect,
            Rpc::IntrospectCold,
            Rpc::Issue,
            Rpc::Refresh,
        ],
    );
    options.client_policy = true;
    let report = bench::run(options).await.expect("bench run");
    assert_clean(
        &report,
        &[
            "health",
            "introspect",
            "introspect-cold",
            "issue",
            "refresh",
        ],
    );
}

async fn ext_authz_needs_only_a_token(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.ext_authz.enabled = true).await;
    let creds = app.bootstrap("acme", "orders:read").await;
    let mut options = quick(&app, &creds, &[Rpc::ExtAuthz]);
    options.admin = None;
    options.token = Some(SecretString::from(app.token(&creds, &[]).await));
    let report = bench::run(options).await.expect("bench run");
    assert_clean(&report, &["health", "ext-authz"]);
}

/// `tokend bench <args>`, with no database or config in its environment.
async fn bench_cli(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tokend"))
            .arg("bench")
            .args(&args)
            .env_remove("TOKEND_BENCH_CLIENT_ID")
            .env_remove("TOKEND_BENCH_CLIENT_SECRET")
            .output()
            .expect("run tokend bench")
    })
    .await
    .unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

async fn binary_prints_clean_json(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.bootstrap("system", "tokend.admin").await;
    let target = format!("http://{}", app.addr);
    let out = bench_cli(strings(&[
        "--json",
        "--target",
        &target,
        "--rpc",
        "health,introspect",
        "--client-id",
        &admin.client_id,
        "--client-secret",
        &admin.client_secret,
        "--requests",
        "200",
        "--warmup",
        "0",
        "--concurrency",
        "4",
    ]))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let report: BenchReport = serde_json::from_slice(&out.stdout).expect("only JSON on stdout");
    assert_eq!(report.target, target);
    assert_clean(&report, &["health", "introspect"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(json["results"][1]["latency_us"][key].is_u64(), "{key}");
    }
    assert_eq!(
        client_ids(&app, &admin).await,
        vec![admin.client_id.clone()]
    );
}

async fn bad_input_fails_with_one_clear_line(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let target = format!("http://{}", app.addr);

    let out = bench_cli(strings(&["--target", &target, "--rpc", "health,teleport"])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("unknown rpc `teleport`"), "{stderr}");
    assert!(
        stderr.contains("introspect-cold"),
        "lists the known rpcs: {stderr}"
    );

    let out = bench_cli(strings(&["--target", &target, "--rpc", "issue"])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("rpc `issue` needs --client-id"), "{stderr}");

    let out = bench_cli(strings(&["--target", &target])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("--token and --caller-token"), "{stderr}");

    // Nothing listens on a port just released.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let out = bench_cli(strings(&["--target", &closed, "--rpc", "health"])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach tokend at {closed}")),
        "{stderr}"
    );
}

for_each_backend!(
    every_rpc_runs_clean_and_cleans_up,
    client_policy_run_is_clean,
    bad_secrets_round_reports_their_rate,
    binary_prints_clean_json,
    bad_input_fails_with_one_clear_line,
    ext_authz_needs_only_a_token,
);
