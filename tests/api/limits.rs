//! Every limit of `[limits]` crossed once: a request message too large, a header list too
//! large, more streams on one connection than allowed, more calls in flight than the server
//! takes, a call that outlives the deadline, a peer that stops answering pings, and a
//! connection past its maximum age. Transport limits do not depend on the store: SQLite only.

use std::time::{Duration, Instant};

use tokend::proto::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::common::Backend;
use crate::helpers::*;

fn issue(creds: &Creds, secret_len: Option<usize>) -> IssueTokenRequest {
    IssueTokenRequest {
        client_id: creds.client_id.clone(),
        client_secret: match secret_len {
            Some(n) => "x".repeat(n),
            None => creds.client_secret.clone(),
        },
        scopes: vec![],
        audience: vec![],
        ..Default::default()
    }
}

async fn message_and_header_sizes_are_bounded(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.limits.max_request_bytes = 16 * 1024;
        s.limits.max_header_list_bytes = 4096;
    })
    .await;
    let creds = app.bootstrap("acme", "read").await;
    // Under the limit: an ordinary answer (a wrong secret).
    let err = app
        .tokens()
        .issue_token(issue(&creds, Some(15 * 1024)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    // Over it: refused before it is decoded.
    let err = app
        .tokens()
        .issue_token(issue(&creds, Some(17 * 1024)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("too large"), "{err:?}");
    // Metadata: 1 KiB passes, 8 KiB is more than the header list may hold.
    let with_header = |n: usize| {
        let mut request = tonic::Request::new(issue(&creds, None));
        request
            .metadata_mut()
            .insert("x-padding", "p".repeat(n).parse().unwrap());
        request
    };
    app.tokens().issue_token(with_header(1024)).await.unwrap();
    let err = app
        .tokens()
        .issue_token(with_header(8 * 1024))
        .await
        .unwrap_err();
    assert_ne!(err.code(), Code::Ok);
    assert_ne!(err.code(), Code::Unauthenticated, "{err:?}");
}

/// HTTP/1.1 requests are held to `max_header_list_bytes` as HTTP/2 ones are (16 KiB by
/// default, each field counted as name + value + 32): 8 KiB of headers pass, 20 KiB and 200 KiB
/// get 431 with an OAuth 2.0 `invalid_request` that names the setting.
async fn http1_header_size_is_bounded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let get_with_padding = |n: usize| {
        let addr = app.addr;
        async move {
            let mut http = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!(
                "GET /.well-known/jwks.json HTTP/1.1\r\nHost: t\r\nx-padding: {}\r\nConnection: close\r\n\r\n",
                "p".repeat(n)
            );
            http.write_all(request.as_bytes()).await.unwrap();
            let mut response = Vec::new();
            let _ = http.read_to_end(&mut response).await;
            String::from_utf8_lossy(&response).into_owned()
        }
    };
    let response = get_with_padding(8 * 1024).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    for n in [20 * 1024, 200 * 1024] {
        let response = get_with_padding(n).await;
        assert!(response.starts_with("HTTP/1.1 431"), "{n}: {response}");
        assert!(response.contains("invalid_request"), "{response}");
        assert!(response.contains("max_header_list_bytes"), "{response}");
    }
}

/// One stream per connection: a health Watch holds it, so a second call on the same
/// connection waits (the client queues it), while another connection is served at once.
async fn streams_per_connection_are_bounded(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.limits.max_concurrent_streams = 1).await;
    let mut watch = HealthClient::new(app.channel.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap().unwrap();
    let mut queued = {
        let mut introspection = app.introspection();
        tokio::spawn(async move { introspection.get_jwks(GetJwksRequest {}).await })
    };
    // Another connection is served meanwhile...
    let other = channel_from(app.addr, "127.0.0.1").await;
    tokend::proto::introspection_service_client::IntrospectionServiceClient::new(other)
        .get_jwks(GetJwksRequest {})
        .await
        .unwrap();
    // ...while the second stream on the Watch's connection waits. A queued call shows nothing
    // until it is let through, so it gets a bounded time to (wrongly) run; that it was queued,
    // not lost, shows when the Watch ends and lets it through.
    let ran = tokio::time::timeout(Duration::from_millis(500), &mut queued).await;
    assert!(ran.is_err(), "a second stream ran beside the Watch");
    drop(watch);
    tokio::time::timeout(Duration::from_secs(10), queued)
        .await
        .expect("the queued call runs once the Watch has ended")
        .unwrap()
        .unwrap();
}

/// A locked client_id's refusal is held `secrets.lockout_delay_ms` (2 s): that call is in
/// flight meanwhile. With one call allowed in flight, a second is refused at once
/// (RESOURCE_EXHAUSTED over gRPC, 503 over HTTP); with a 300 ms deadline, the held call ends
/// in DEADLINE_EXCEEDED.
async fn calls_in_flight_and_the_deadline_are_bounded(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.limits.max_requests_in_flight = 1;
        s.limits.request_timeout_ms = 300;
        s.secrets.max_failures = 1;
        s.secrets.lockout_delay_ms = 2000;
    })
    .await;
    let creds = app.bootstrap("acme", "read").await;
    let err = app
        .tokens()
        .issue_token(issue(&creds, Some(40)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // Locked now: the next refusal is held.
    let held = {
        let mut tokens = app.tokens();
        let request = issue(&creds, Some(40));
        tokio::spawn(async move {
            let start = Instant::now();
            (tokens.issue_token(request).await, start.elapsed())
        })
    };
    // Time for the held call to reach the server; nothing shows that it has, but if it has
    // not, the next call is served and the test fails rather than passing.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = app
        .introspection()
        .get_jwks(GetJwksRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // Refused at once: while the held call still holds the only slot, not after it.
    assert!(!held.is_finished(), "the refusal waited for the held call");
    let mut http = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    http.write_all(b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    http.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.to_ascii_lowercase().contains("retry-after: 1"));

    let (answer, took) = held.await.unwrap();
    let err = answer.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    // Ended by the 300 ms deadline, not after the 2 s hold (both run on the wall clock).
    assert!(took < Duration::from_millis(1500), "{took:?}");
    // Nothing in flight any more: served again.
    app.introspection()
        .get_jwks(GetJwksRequest {})
        .await
        .unwrap();
}

/// An HTTP/2 peer that says hello and then stays silent: with keepalive its unanswered ping
/// closes the connection; without, it stays open.
async fn silent_peers_are_dropped_by_keepalive(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.limits.keepalive_interval_secs = 1;
        s.limits.keepalive_timeout_secs = 1;
    })
    .await;
    let closed = silent_peer(app.addr, Duration::from_secs(6)).await;
    assert!(
        closed
            .as_ref()
            .is_some_and(|(took, _)| *took < Duration::from_secs(5)),
        "{closed:?}"
    );
    // Closed because a ping went unanswered: the server did send one.
    let (_, frames) = closed.unwrap();
    assert!(frames.contains(&PING), "no PING among {frames:?}");
    let off = TestApp::spawn_with(backend, |s| s.limits.keepalive_interval_secs = 0).await;
    assert!(
        silent_peer(off.addr, Duration::from_secs(3))
            .await
            .is_none()
    );
}

/// A connection older than `max_connection_age_secs` is shut down (GOAWAY, then closed after
/// the grace of `request_timeout_ms`), while it stays open without the limit (see the
/// keepalive test); a real client just reconnects.
async fn old_connections_are_closed(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.limits.keepalive_interval_secs = 0;
        s.limits.max_connection_age_secs = 1;
        s.limits.request_timeout_ms = 500;
    })
    .await;
    app.introspection()
        .get_jwks(GetJwksRequest {})
        .await
        .unwrap();
    // The connection's age runs on the wall clock (hyper's timer), which the manual clock does
    // not drive: closed not before that age, and not long after.
    let (took, _) = silent_peer(app.addr, Duration::from_secs(6))
        .await
        .expect("the connection was closed");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    // The test's own channel is older than a second by now: its calls still succeed. A call
    // that races the server closing the old connection may fail before it was processed
    // (gRPC's MAX_CONNECTION_AGE contract: the client retries it on a new connection); tonic's
    // channel can take a moment to notice the GOAWAY, so a retry a little later must succeed.
    for _ in 0..3 {
        let mut client = app.introspection();
        let mut failures = Vec::new();
        while let Err(status) = client.get_jwks(GetJwksRequest {}).await {
            failures.push(status);
            assert!(failures.len() < 5, "no call succeeded: {failures:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Opens an HTTP/2 connection (preface, an empty SETTINGS frame, and the acknowledgement of the
/// server's), then only reads, never answering anything (pings included). `Some((when it closed, frame types received))`, or `None` if it was
/// still open after `wait`.
async fn silent_peer(addr: std::net::SocketAddr, wait: Duration) -> Option<(Duration, Vec<u8>)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x04\x01\x00\x00\x00\x00")
        .await
        .unwrap();
    let start = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(wait, read_all).await.ok()?;
    Some((start.elapsed(), frame_types(&received)))
}

/// The HTTP/2 PING frame type (RFC 9113 section 6.7).
const PING: u8 = 0x6;

fn frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        types.push(bytes[3]);
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    types
}

mod sqlite {
    use crate::common::Backend::Sqlite;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn message_and_header_sizes_are_bounded() {
        super::message_and_header_sizes_are_bounded(Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn http1_header_size_is_bounded() {
        super::http1_header_size_is_bounded(Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streams_per_connection_are_bounded() {
        super::streams_per_connection_are_bounded(Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_in_flight_and_the_deadline_are_bounded() {
        super::calls_in_flight_and_the_deadline_are_bounded(Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn silent_peers_are_dropped_by_keepalive() {
        super::silent_peers_are_dropped_by_keepalive(Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn old_connections_are_closed() {
        super::old_connections_are_closed(Sqlite).await
    }
}
