//! Prometheus metrics on their own port: every family the operations guide names is there, the
//! counters move with the calls that drive them, no label carries a client id or a token, and
//! the scrape passes `promtool check metrics` (required in CI, where Debian's `prometheus`
//! package provides it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokend::proto::*;
use tonic::Code;

use crate::common::Backend;
use crate::helpers::*;
use crate::oauth_http::token_with_basic;

/// One scrape: the raw text, and every sample by its full series name (`name{labels}`), labels
/// in the order the encoder writes them (sorted by name).
pub(crate) struct Scrape {
    text: String,
    samples: HashMap<String, f64>,
}

impl Scrape {
    pub(crate) async fn of(addr: SocketAddr) -> Self {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: tokend\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let response = String::from_utf8(response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        // A chunked body: tonic's HTTP/1.1 server streams it.
        let text = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').unwrap();
                (series.to_owned(), value.parse().unwrap())
            })
            .collect();
        Self { text, samples }
    }

    pub(crate) fn get(&self, series: &str) -> f64 {
        self.samples.get(series).copied().unwrap_or(0.0)
    }

    fn has(&self, series: &str) -> bool {
        self.samples.contains_key(series)
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

fn grpc(service: &str, method: &str, code: &str) -> String {
    format!(
        "tokend_grpc_requests_total{{code=\"{code}\",method=\"{method}\",service=\"{service}\"}}"
    )
}

const TOKENS: &str = "tokend.v1.TokenService";

async fn metrics_count_what_happens(backend: Backend) {
    let mut app = TestApp::spawn_with(backend, |s| {
        s.metrics.addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let metrics = app.metrics_addr.expect("a metrics port");
    assert_ne!(metrics, app.addr);
    let admin = app.admin("acme").await;
    let introspector = app.introspector("acme").await;
    let mut svc = client("acme", "svc", &["read:*"]);
    svc.refresh_token_ttl = Some(prost_types::Duration {
        seconds: 3600,
        nanos: 0,
    });
    let (_, creds) = app.create_client(&admin, svc).await;
    let before = Scrape::of(metrics).await;

    // Three tokens over gRPC, one over HTTP, one refused.
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(app.try_token(&creds, &["read:a"], &[]).await.unwrap());
    }
    let answer = token_with_basic(app.addr, &creds, "grant_type=client_credentials").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let wrong = Creds {
        client_secret: "tkd_sk_wrong".into(),
        ..creds.clone()
    };
    let err = app.try_token(&wrong, &[], &[]).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // Introspect one token twice (a cache hit), and garbage.
    let access = &tokens[0].access_token;
    assert!(app.introspect(&introspector, access).await.active);
    assert!(app.introspect(&introspector, access).await.active);
    assert!(!app.introspect(&introspector, "garbage").await.active);
    // A refresh token spent, then presented again after the retry window: reuse.
    let refresh = |token: String| {
        let mut tokens = app.tokens();
        let creds = creds.clone();
        async move {
            tokens
                .refresh_token(RefreshTokenRequest {
                    client_id: creds.client_id,
                    client_secret: creds.client_secret,
                    refresh_token: token,
                    scopes: vec![],
                    ..Default::default()
                })
                .await
        }
    };
    refresh(tokens[1].refresh_token.clone()).await.unwrap();
    app.advance(Duration::from_secs(60));
    let err = refresh(tokens[1].refresh_token.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    // A method nobody serves.
    let mut unknown = tonic::client::Grpc::new(app.channel.clone());
    unknown.ready().await.unwrap();
    let err = unknown
        .unary::<_, (), _>(
            tonic::Request::new(()),
            "/tokend.v1.Nope/Nothing".parse().unwrap(),
            tonic_prost::ProstCodec::<(), ()>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);

    let after = Scrape::of(metrics).await;
    let delta = |series: &str| after.get(series) - before.get(series);
    assert_eq!(delta(&grpc(TOKENS, "IssueToken", "OK")), 3.0);
    assert_eq!(delta(&grpc(TOKENS, "IssueToken", "UNAUTHENTICATED")), 1.0);
    assert_eq!(delta(&grpc(TOKENS, "RefreshToken", "OK")), 1.0);
    assert_eq!(
        delta(&grpc(TOKENS, "RefreshToken", "INVALID_ARGUMENT")),
        1.0
    );
    assert_eq!(
        delta(&grpc("tokend.v1.IntrospectionService", "Introspect", "OK")),
        3.0
    );
    assert_eq!(delta(&grpc("unknown", "unknown", "UNIMPLEMENTED")), 1.0);
    assert_eq!(
        delta("tokend_http_requests_total{route=\"/oauth2/token\",status=\"200\"}"),
        1.0
    );
    // 3 + HTTP 1 + the refresh 1.
    assert_eq!(delta("tokend_tokens_issued_total{format=\"jwt\"}"), 5.0);
    assert_eq!(delta("tokend_introspections_total{answer=\"active\"}"), 2.0);
    assert_eq!(
        delta("tokend_introspections_total{answer=\"inactive\"}"),
        1.0
    );
    assert_eq!(delta("tokend_refresh_reuse_detected_total"), 1.0);
    // 3 + HTTP 1 + both refreshes (the second proved the client, then met the reuse).
    assert_eq!(
        delta("tokend_client_authentications_total{method=\"client_secret\"}"),
        6.0
    );
    assert_eq!(
        delta("tokend_client_authentication_failures_total{proof=\"secret\"}"),
        1.0
    );
    assert!(delta("tokend_cache_lookups_total{cache=\"verified_token\",result=\"hit\"}") >= 1.0);
    assert!(delta("tokend_cache_lookups_total{cache=\"verified_secret\",result=\"hit\"}") >= 3.0);
    // argon2 ran at least for the wrong secret.
    assert!(delta("tokend_argon2_queue_wait_seconds_count") >= 1.0);
    let latency = "tokend_grpc_request_duration_seconds_bucket{method=\"IssueToken\",service=\"tokend.v1.TokenService\",le=\"+Inf\"}";
    assert_eq!(delta(latency), 4.0);
    assert!(after.has(
        "tokend_grpc_request_duration_seconds_bucket{method=\"IssueToken\",service=\"tokend.v1.TokenService\",le=\"0.00005\"}"
    ));
    // The reuse revoked the family: a deny entry.
    assert!(after.get("tokend_deny_list_entries") >= 1.0);
    assert_eq!(after.get("tokend_signing_keys{state=\"active\"}"), 1.0);
    assert_eq!(after.get("tokend_database_state{state=\"up\"}"), 1.0);
    assert!(after.get("tokend_changelog_staleness_seconds") < 5.0);
    assert!(after.has("tokend_db_pool_connections{state=\"waiting\"}"));
    assert!(after.get("tokend_db_pool_max_connections") >= 1.0);
    let backend_name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(
        after.get(&format!(
            "tokend_build_info{{backend=\"{backend_name}\",version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    // Nothing from a request becomes a label.
    for secret in [
        creds.client_id.as_str(),
        creds.client_secret.as_str(),
        access.as_str(),
        "garbage",
        "Nope",
    ] {
        assert!(!after.text.contains(secret), "{secret} in the scrape");
    }
    promtool_check(&after.text).await;
    app.stop().await.unwrap();
}

/// `promtool check metrics` on a scrape: required when `TOKEND_TEST_REQUIRE_PROMTOOL` is set
/// (CI), else run when promtool is installed and reported skipped when not.
async fn promtool_check(text: &str) {
    use std::io::Write as _;
    let spawned = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) => {
            assert!(
                std::env::var_os("TOKEND_TEST_REQUIRE_PROMTOOL").is_none(),
                "promtool is required here: {err}"
            );
            eprintln!("SKIPPED: promtool check metrics (promtool not installed: {err})");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Without `metrics.addr` there is no metrics port, and the API port does not serve them.
async fn no_metrics_port_unless_asked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert!(app.metrics_addr.is_none());
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: tokend\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
}

for_each_backend!(metrics_count_what_happens, no_metrics_port_unless_asked);
