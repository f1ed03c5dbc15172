//! Telemetry, seen from outside: no secret, token or hash ever reaches a log line (a whole flow
//! runs with every target at TRACE level into a buffer, which must then contain none of them),
//! and a caller's W3C `traceparent` becomes the parent of the server's spans.

#[path = "common/mod.rs"]
#[macro_use]
mod common;
#[path = "api/helpers.rs"]
mod helpers;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt as _;

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

struct Telemetry {
    logs: Capture,
    spans: InMemorySpanExporter,
    provider: SdkTracerProvider,
}

/// One global subscriber for this test binary: JSON logs at TRACE into a buffer, and spans into
/// an in-memory OpenTelemetry exporter.
fn telemetry() -> &'static Telemetry {
    static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();
    TELEMETRY.get_or_init(|| {
        let logs = Capture::default();
        let writer = logs.clone();
        let spans = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .json()
            .with_current_span(true)
            .with_span_list(true);
        let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::TRACE)
            .with(fmt)
            .with(otel);
        tracing::subscriber::set_global_default(subscriber).unwrap();
        Telemetry {
            logs,
            spans,
            provider,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_token_or_hash_is_logged() {
    let capture = telemetry().logs.clone();
    let app = TestApp::spawn(common::Backend::Sqlite).await;
    let admin_creds = app
        .bootstrap("system", "tokend.admin,tokend.introspect")
        .await;
    let admin = app.token(&admin_creds, &[]).await;
    let (created, creds) = app
        .create_client(&admin, client("acme", "svc", &["read"]))
        .await;
    let created_id = created.client_id.clone();
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

    // The lifecycle: opaque access tokens, refresh, a retried refresh, reuse, revocation.
    let mut bot = client("acme", "bot", &["read"]);
    bot.access_token_format = AccessTokenFormat::Opaque.into();
    bot.refresh_token_ttl = Some(prost_types::Duration {
        seconds: 3600,
        nanos: 0,
    });
    let (_, bot) = app.create_client(&admin, bot).await;
    let issued = app.try_token(&bot, &[], &[]).await.unwrap();
    app.introspect(&admin, &issued.access_token).await;
    let refresh = |token: String| {
        let mut tokens = app.tokens();
        let bot = bot.clone();
        async move {
            tokens
                .refresh_token(RefreshTokenRequest {
                    client_id: bot.client_id.clone(),
                    client_secret: bot.client_secret.clone(),
                    refresh_token: token,
                    scopes: vec![],
                })
                .await
        }
    };
    let next = refresh(issued.refresh_token.clone())
        .await
        .unwrap()
        .into_inner();
    refresh(issued.refresh_token.clone()).await.unwrap();
    app.advance(std::time::Duration::from_secs(60));
    assert!(refresh(issued.refresh_token.clone()).await.is_err());
    app.tokens()
        .revoke_token(RevokeTokenRequest {
            client_id: bot.client_id.clone(),
            client_secret: bot.client_secret.clone(),
            token: next.access_token.clone(),
            token_type_hint: String::new(),
        })
        .await
        .unwrap();
    let sha256 = |t: &str| -> String {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, t.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let lifecycle = [
        issued.access_token.clone(),
        issued.refresh_token.clone(),
        next.access_token.clone(),
        next.refresh_token.clone(),
        sha256(&issued.refresh_token),
        sha256(&next.refresh_token),
        sha256(&issued.access_token),
    ];

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
    for secret in secrets.into_iter().chain(lifecycle.iter()) {
        // Any 16-character window of a secret would be a leak.
        let probe = &secret[secret.len() - 16..];
        assert!(!logs.contains(probe), "a secret or token reached the logs");
    }
    assert!(!logs.contains("$argon2"), "a hash reached the logs");
    // Every audit event is one JSON line with target `tokend::audit`, for a SIEM.
    let audit: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "tokend::audit")
        .collect();
    let kinds: Vec<&str> = audit
        .iter()
        .filter_map(|v| v["fields"]["kind"].as_str())
        .collect();
    // (The bootstrap ran in the CLI's own process, whose lines went to its stderr.)
    for kind in ["client_created", "secret_rotated", "refresh_reuse_detected"] {
        assert!(kinds.contains(&kind), "no {kind} audit line in {kinds:?}");
    }
    let created = audit
        .iter()
        .find(|v| v["fields"]["kind"] == "client_created")
        .unwrap();
    assert_eq!(created["fields"]["client_id"], created_id.as_str());
    assert_eq!(created["fields"]["source_address"], "127.0.0.1");
    for prefix in ["tkd_cs_", "tkd_rt_", "tkd_at_"] {
        assert!(!logs.contains(prefix), "a {prefix} secret reached the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_traceparent_parents_the_request_span() {
    let t = telemetry();
    let app = TestApp::spawn(common::Backend::Sqlite).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_span = "00f067aa0ba902b7";
    let mut request = tonic::Request::new(GetJwksRequest {});
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_span}-01").parse().unwrap(),
    );
    app.introspection().get_jwks(request).await.unwrap();
    t.provider.force_flush().unwrap();
    let spans = t.spans.get_finished_spans().unwrap();
    let span = spans
        .iter()
        .find(|s| s.span_context.trace_id().to_string() == trace_id)
        .expect("a server span joined the caller's trace");
    assert_eq!(span.parent_span_id.to_string(), parent_span);
    assert_eq!(span.name, "grpc");
}
