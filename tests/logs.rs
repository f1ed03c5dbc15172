//! No secret, token or hash ever reaches a log line: a whole flow runs with every target at
//! TRACE level into a buffer, which must then contain none of them.

#[path = "common/mod.rs"]
#[macro_use]
mod common;
#[path = "api/helpers.rs"]
mod helpers;

use std::io::Write;
use std::sync::{Arc, Mutex};

use helpers::*;
use tokend::proto::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_token_or_hash_is_logged() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let app = TestApp::spawn(common::Backend::Sqlite).await;
    let admin_creds = app
        .bootstrap("system", "tokend.admin,tokend.introspect")
        .await;
    let admin = app.token(&admin_creds, &[]).await;
    let (created, creds) = app
        .create_client(&admin, client("acme", "svc", &["read"]))
        .await;
    let token = app.token(&creds, &[]).await;
    app.introspect(&admin, &token).await;
    let rotated = app
        .clients()
        .rotate_client_secret(authed(
            RotateClientSecretRequest {
                client_id: created.client_id.clone(),
                grace_period: None,
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    // Failures log too: a wrong secret and a bad token.
    let wrong = Creds {
        client_id: creds.client_id.clone(),
        client_secret: creds.client_secret.clone(),
    };
    assert!(app.try_token(&wrong, &[], &[]).await.is_err());
    app.introspect(&admin, &format!("{token}tampered")).await;

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.lines().count() > 20,
        "the capture saw the flow:\n{logs}"
    );
    let secrets = [
        &admin_creds.client_secret,
        &admin,
        &creds.client_secret,
        &token,
        &rotated.client_secret,
    ];
    for secret in secrets {
        // Any 16-character window of a secret would be a leak.
        let probe = &secret[secret.len() - 16..];
        assert!(!logs.contains(probe), "a secret or token reached the logs");
    }
    assert!(!logs.contains("$argon2"), "a hash reached the logs");
    assert!(
        !logs.contains("tkd_cs_"),
        "a client secret reached the logs"
    );
}
