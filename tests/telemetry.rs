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

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct Telemetry {
    logs: Capture,
    /// What the production log layers write at the default level: the human format...
    human: Capture,
    /// ...and JSON.
    json: Capture,
    spans: InMemorySpanExporter,
    provider: SdkTracerProvider,
}

/// One global subscriber for this test binary: JSON logs at TRACE into a buffer, tokend's own
/// log layers (human and JSON, `RUST_LOG` or `info`, no colours) into two more, and spans into
/// an in-memory OpenTelemetry exporter.
fn telemetry() -> &'static Telemetry {
    static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();
    TELEMETRY.get_or_init(|| {
        let (human, json) = (Capture::default(), Capture::default());
        let production = {
            let (human, json) = (human.clone(), json.clone());
            vec![
                tokend::telemetry::log_layer(false, false, move || human.clone()),
                tokend::telemetry::log_layer(true, false, move || json.clone()),
            ]
        };
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
            .with(production)
            .with(tracing_subscriber::filter::LevelFilter::TRACE)
            .with(fmt)
            .with(otel);
        tracing::subscriber::set_global_default(subscriber).unwrap();
        Telemetry {
            logs,
            human,
            json,
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
                    ..Default::default()
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
            ..Default::default()
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

/// One form POST over HTTP/1.1 from the local address `from`: the status line and the rest.
async fn post_from(
    addr: std::net::SocketAddr,
    from: &str,
    path: &str,
    form: &[(&str, &str)],
) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

/// Log forging through a client_id (issue 20): refresh, exchange and revocation requests over
/// HTTP whose client_id holds a line break, a genuine-looking `tokend::audit` line and a
/// terminal escape, and a request whose client_id is a real client's secret. Each comes from
/// its own address and locks it (`max_failures` 1), so a warning is logged inside the
/// request's spans. In tokend's human and JSON formats alike, at the default level: no line
/// starts with the forged text, no ESC or other raw control character from the input is
/// written, and the secret appears nowhere (nor at TRACE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ids_cannot_forge_log_lines() {
    let t = telemetry();
    let app = TestApp::spawn_with(common::Backend::Sqlite, |s| s.secrets.max_failures = 1).await;
    let creds = app.bootstrap("acme", "read").await;
    let subject = app.token(&creds, &[]).await;
    let marker = format!("FORGED-{}", uuid::Uuid::new_v4().simple());
    let forged_line = "2026-05-01T10:00:00.000000Z  INFO tokend::audit: audit kind=client_deleted";
    let forged = format!(
        "{}\n{forged_line} client_id={} \x1b[31m{marker}\x1b[0m\r",
        creds.client_id, creds.client_id
    );
    let secret = "tkd_cs_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    let token = "/oauth2/token";
    let refresh = [
        ("grant_type", "refresh_token"),
        (
            "refresh_token",
            "tkd_rt_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ),
        ("client_id", &forged),
        ("client_secret", secret),
    ];
    let exchange = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("subject_token", &subject),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        ("client_id", &forged),
        ("client_secret", secret),
    ];
    let revoke = [
        ("token", "x"),
        ("client_id", &forged),
        ("client_secret", secret),
    ];
    let pasted = [
        ("grant_type", "client_credentials"),
        ("client_id", &creds.client_secret),
        ("client_secret", &creds.client_secret),
    ];
    type Call<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let calls: [Call<'_>; 4] = [
        ("127.0.0.2", token, &refresh),
        ("127.0.0.3", token, &exchange),
        ("127.0.0.4", "/oauth2/revoke", &revoke),
        ("127.0.0.5", token, &pasted),
    ];
    for (from, path, form) in calls {
        let response = post_from(app.addr, from, path, form).await;
        // (400, not 401: the client authenticated in the body, RFC 6749 section 5.2.)
        assert!(
            response.contains(r#""error":"invalid_client""#),
            "{path} from {from}: {response}"
        );
    }

    let human = t.human.text();
    // Not vacuous: the locks' warnings were logged, inside the requests' spans.
    assert!(
        human.contains("address locked"),
        "no lock warning:\n{human}"
    );
    for (format, logs) in [("human", &human), ("json", &t.json.text())] {
        for line in logs.lines() {
            assert!(
                !line.starts_with(forged_line),
                "{format}: a forged line: {line}"
            );
            assert!(
                !line.contains(&marker),
                "{format}: a malformed client_id logged: {line}"
            );
            assert!(
                !line.chars().any(char::is_control),
                "{format}: a raw control character: {line:?}"
            );
            if format == "json" {
                serde_json::from_str::<serde_json::Value>(line)
                    .unwrap_or_else(|_| panic!("not one JSON object: {line}"));
            }
        }
        assert!(
            !logs.contains(&creds.client_secret),
            "{format}: a secret logged as client_id"
        );
    }
    assert!(
        !t.logs.text().contains(&creds.client_secret),
        "TRACE: a secret logged as client_id"
    );
    // The revocation's span names the client_id it was given only as malformed.
    assert!(
        human
            .lines()
            .any(|l| l.contains("address locked") && l.contains("client_id=(malformed)")),
        "no lock warning in the revocation's span:\n{human}"
    );
}
