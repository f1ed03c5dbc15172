//! KEK rotation: a deployment started under KEK A is redeployed with [B, A], re-sealed by the
//! real `tokend kek rotate`, then runs with [B] alone; tokens and refresh retries survive every
//! step, and a configuration without the KEK the stored keys need is refused with a clear
//! message. The MAC key refresh successors hang on is stored, never derived from the KEK.

use std::time::Duration;

use secrecy::SecretString;
use tokend::config::Settings;
use tokend::domain::{Clock, Kek, KekNotConfigured};
use tokend::proto::audit_service_client::AuditServiceClient;
use tokend::proto::key_service_client::KeyServiceClient;
use tokend::proto::token_service_client::TokenServiceClient;
use tokend::proto::*;
use tokend::server::Application;
use tokend::store::{self, ConnectOptions, Store};
use tonic::Status;
use tonic::transport::Channel;

use crate::common::Backend;
use crate::helpers::*;

/// A new KEK: its base64 text and its id.
fn new_kek() -> (String, String) {
    let (kek, text) = Kek::generate().unwrap();
    (text, kek.id().to_owned())
}

fn kek_id(text: &str) -> String {
    Kek::from_base64(text).unwrap().id().to_owned()
}

fn with_keks(list: String) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| s.keys.kek = Some(SecretString::from(list))
}

async fn refresh(channel: &Channel, creds: &Creds, token: &str) -> Result<String, Status> {
    let request = RefreshTokenRequest {
        client_id: creds.client_id.clone(),
        client_secret: creds.client_secret.clone(),
        refresh_token: token.into(),
        scopes: vec![],
        ..Default::default()
    };
    let response = TokenServiceClient::new(channel.clone())
        .refresh_token(request)
        .await?;
    Ok(response.into_inner().refresh_token)
}

/// A client of tenant acme with refresh tokens.
async fn refreshing_client(app: &TestApp, admin: &str) -> Creds {
    let mut spec = client("acme", "worker", &["read"]);
    spec.refresh_token_ttl = Some(prost_types::Duration {
        seconds: 3600,
        nanos: 0,
    });
    app.create_client(admin, spec).await.1
}

async fn open_store(app: &TestApp) -> std::sync::Arc<dyn Store> {
    let options = ConnectOptions {
        url: app.db.url.clone(),
        max_connections: 1,
    };
    store::connect(&options).await.unwrap()
}

/// (kid, kek_id) of every stored signing key, newest first.
async fn sealing(app: &TestApp) -> Vec<(String, String)> {
    let keys = open_store(app).await.list_keys().await.unwrap();
    keys.into_iter().map(|k| (k.kid, k.kek_id)).collect()
}

/// `tokend kek rotate` through the binary with `keks` configured; its JSON summary.
async fn kek_rotate(app: &TestApp, keks: &str) -> serde_json::Value {
    let out = app
        .cli_env(&["kek", "rotate"], &[("TOKEND__KEYS__KEK", keks)])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kek rotate failed: {stderr}");
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

async fn the_kek_rotates_across_restarts_and_replicas(backend: Backend) {
    let (b, b_id) = new_kek();
    let a_id = kek_id(KEK);
    // Under KEK A: keys, tokens, a refresh.
    let app = TestApp::spawn(backend).await;
    let op = app
        .bootstrap("system", "tokend.admin,tokend.introspect")
        .await;
    let admin = app.token(&op, &[]).await;
    let creds = refreshing_client(&app, &admin).await;
    let issued = app.try_token(&creds, &["read"], &[]).await.unwrap();
    let (under_a, r0) = (issued.access_token, issued.refresh_token);
    let r1 = refresh(&app.channel, &creds, &r0).await.unwrap();

    // Redeployed with [B, A]: starts, verifies A's tokens, and the retry of r0 (its response
    // lost just before the restart) gets the same successor, not a reuse verdict.
    let app = app.restart_with(with_keks(format!("{b},{KEK}"))).await;
    assert!(app.introspect(&admin, &under_a).await.active);
    assert_eq!(refresh(&app.channel, &creds, &r0).await.unwrap(), r1);
    // A replica not yet redeployed (still [A]) agrees on successors with one that has B first.
    let old = Replica::start(&app, with_keks(KEK.to_owned())).await;
    let r2 = refresh(&app.channel, &creds, &r1).await.unwrap();
    assert_eq!(refresh(&old.channel, &creds, &r1).await.unwrap(), r2);
    old.stop().await;

    // A new signing key is sealed under B, the current KEK; the older one stays under A.
    let request = RotateSigningKeyRequest {
        prepublish: Some(prost_types::Duration::default()),
        retire_previous: false,
    };
    KeyServiceClient::new(app.channel.clone())
        .rotate_signing_key(authed(request, &admin))
        .await
        .unwrap();
    let kids: Vec<String> = sealing(&app).await.into_iter().map(|(k, _)| k).collect();
    let expected = [
        (kids[0].clone(), b_id.clone()),
        (kids[1].clone(), a_id.clone()),
    ];
    assert_eq!(sealing(&app).await, expected);
    let under_b = app.token(&op, &[]).await;
    assert!(app.introspect(&admin, &under_b).await.active);

    // B alone is not enough yet: the start is refused, naming A.
    let mut only_b = app.settings.clone();
    with_keks(b.clone())(&mut only_b);
    let err = Application::build_with_clock(only_b, app.clock.clone() as std::sync::Arc<dyn Clock>)
        .await
        .err()
        .expect("refused without KEK A");
    assert!(err.chain().any(|e| e.is::<KekNotConfigured>()), "{err:#}");
    assert!(
        format!("{err:#}").contains(&format!("KEK {a_id}")),
        "{err:#}"
    );

    // `tokend kek rotate`: everything moves to B, once.
    let done = kek_rotate(&app, &format!("{b},{KEK}")).await;
    assert_eq!(done["kek_id"], b_id.as_str());
    assert_eq!(done["signing_keys"], 1, "{done}");
    assert_eq!(done["secrets"], 1, "the MAC key: {done}");
    assert_eq!(done["reencrypted"], 2, "{done}");
    assert_eq!(done["already_current"], 1, "{done}");
    assert_eq!(done["from_kek_ids"], serde_json::json!([a_id]));
    assert_eq!(done["removable_kek_ids"], serde_json::json!([a_id]));
    let all_b: Vec<_> = kids.iter().map(|k| (k.clone(), b_id.clone())).collect();
    assert_eq!(sealing(&app).await, all_b);
    let again = kek_rotate(&app, &format!("{b},{KEK}")).await;
    assert_eq!(again["reencrypted"], 0, "idempotent: {again}");
    assert_eq!(again["already_current"], 3, "{again}");
    assert_eq!(again["from_kek_ids"], serde_json::json!([]));
    let request = ListAuditEventsRequest {
        kinds: vec![AuditEventKind::KekRotated as i32],
        ..Default::default()
    };
    let events = AuditServiceClient::new(app.channel.clone())
        .list_audit_events(authed(request, &admin))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(events.len(), 1, "the no-op run records nothing: {events:?}");
    assert_eq!(events[0].actor, "cli");
    assert_eq!(events[0].details["kek_id"], b_id);
    assert_eq!(events[0].details["from_kek_ids"], a_id);
    assert_eq!(events[0].details["reencrypted"], "2");

    // Redeployed with [B] alone: starts, verifies tokens signed before and after, and a
    // retry across this restart too gets the same successor.
    let r3 = refresh(&app.channel, &creds, &r2).await.unwrap();
    let app = app.restart_with(with_keks(b.clone())).await;
    assert!(app.introspect(&admin, &under_a).await.active);
    assert!(app.introspect(&admin, &under_b).await.active);
    assert_eq!(refresh(&app.channel, &creds, &r2).await.unwrap(), r3);
    app.advance(Duration::from_secs(30));
    refresh(&app.channel, &creds, &r3).await.unwrap();
    assert!(
        app.introspect(&admin, &app.token(&op, &[]).await)
            .await
            .active
    );

    // A configuration with neither: the binary exits with the configuration code and one
    // line on stderr naming the KEK the database needs.
    let (c, c_id) = new_kek();
    let out = app
        .cli_env(
            &["serve"],
            &[
                ("TOKEND__KEYS__KEK", &c),
                ("TOKEND__SERVER__ADDR", "127.0.0.1:0"),
                ("RUST_LOG", "off"),
            ],
        )
        .await;
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("tokend: the MAC key is sealed"),
        "{stderr}"
    );
    assert!(!stderr.contains("internal error"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "is sealed under KEK {b_id}, which keys.kek does not hold"
        )),
        "{stderr}"
    );
    assert!(stderr.contains(&c_id), "{stderr}");
    assert!(
        !stderr.contains(&c) && !stderr.contains(&b),
        "no key in the message"
    );
}

/// Runs one SQL statement on the test database.
async fn execute(app: &TestApp, sql: &str) {
    use sqlx::Connection as _;
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match app.db.backend() {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
    }
}

/// The successor versions before KEK rotation gave `token`: HMAC-SHA256 under a key derived
/// from their one KEK.
fn derived_successor(kek: &str, token: &str) -> String {
    use aws_lc_rs::hmac;
    use base64::Engine as _;
    let kek = base64::engine::general_purpose::STANDARD
        .decode(kek)
        .unwrap();
    let derived = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &kek),
        b"tokend derived mac key v1",
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref());
    let tag = hmac::sign(
        &key,
        format!("tokend refresh successor v1\n{token}").as_bytes(),
    );
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref());
    format!("tkd_rt_{body}")
}

async fn a_database_from_before_kek_rotation_keeps_its_successors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let creds = refreshing_client(&app, &admin).await;
    let r0 = app.try_token(&creds, &[], &[]).await.unwrap().refresh_token;
    // A new database has a random MAC key, nothing derived from the KEK.
    let r1 = refresh(&app.channel, &creds, &r0).await.unwrap();
    assert_ne!(r1, derived_successor(KEK, &r0));

    // A database as earlier versions left it: keys, but no stored MAC key. Opening it adopts
    // the key those versions derived, so old and new replicas agree during the upgrade.
    let mut app = app;
    app.stop().await.unwrap();
    execute(&app, "DELETE FROM sealed_secrets").await;
    let app = app.restart().await;
    let r2 = refresh(&app.channel, &creds, &r1).await.unwrap();
    assert_eq!(r2, derived_successor(KEK, &r1));
    let r3 = refresh(&app.channel, &creds, &r2).await.unwrap();
    assert_eq!(r3, derived_successor(KEK, &r2));
}

for_each_backend!(
    the_kek_rotates_across_restarts_and_replicas,
    a_database_from_before_kek_rotation_keeps_its_successors,
);

#[test]
fn keys_kek_takes_a_list_in_one_environment_variable() {
    let (b, _) = new_kek();
    let run = |keks: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tokend"))
            .arg("migrate")
            .env("TOKEND__DATABASE__URL", "sqlite::memory:")
            .env("TOKEND__KEYS__KEK", keks)
            .env("RUST_LOG", "off")
            .output()
            .unwrap()
    };
    let out = run(&format!("{b},{KEK}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&format!("{b},{KEK},not-a-kek"));
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("keys.kek: entry 3 of 3: "), "{stderr}");
    assert!(!stderr.contains(&b), "{stderr}");
}
