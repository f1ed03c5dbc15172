//! Which connections the API port keeps: one that completes no first request (a silent
//! socket, half a request head, half the HTTP/2 preface) is closed after
//! `limits.first_request_timeout_secs`, and `limits.max_connections_per_address` and
//! `limits.max_connections` close a connection beyond them at once, until one closes. Transport
//! limits do not depend on the store: SQLite only.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokend::proto::GetJwksRequest;
use tokend::proto::introspection_service_client::IntrospectionServiceClient;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tonic::transport::Channel;

use crate::common::Backend;
use crate::helpers::*;
use crate::metrics::Scrape;

/// Connects to `addr` from the local address `from` (any of 127.0.0.0/8 on loopback).
async fn connect_from(addr: SocketAddr, from: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Writes `sent`, then reads until the server closes: how long that took, or `None` if it was
/// still open after `wait`.
async fn closed_after(mut stream: TcpStream, sent: &[u8], wait: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream.write_all(sent).await.unwrap();
    let mut buf = [0u8; 1024];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(wait, read_all).await.ok()?;
    Some(start.elapsed())
}

/// One HTTP/1.1 request on a fresh connection from `from`: the response, empty when the
/// server closed the connection without one.
async fn get_jwks_from(addr: SocketAddr, from: &str) -> String {
    let mut stream = connect_from(addr, from).await;
    let request = b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    // A refused connection may already be reset when the request is written.
    if stream.write_all(request).await.is_err() {
        return String::new();
    }
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

async fn jwks_over(channel: &Channel) -> Result<(), tonic::Status> {
    IntrospectionServiceClient::new(channel.clone())
        .get_jwks(GetJwksRequest {})
        .await
        .map(drop)
}

async fn connections_without_a_first_request_are_closed(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.limits.first_request_timeout_secs = 1;
        s.limits.keepalive_interval_secs = 0;
        s.metrics.addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let wait = Duration::from_secs(5);
    let cases: [(&str, &[u8]); 3] = [
        ("nothing", b""),
        (
            "half a request head",
            b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: t\r\n",
        ),
        ("half the HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\n"),
    ];
    for (what, sent) in cases {
        let stream = TcpStream::connect(app.addr).await.unwrap();
        let took = closed_after(stream, sent, wait).await;
        assert!(
            took.is_some_and(|t| t >= Duration::from_millis(800) && t < Duration::from_secs(3)),
            "a connection that sent {what} was closed after {took:?}, not after about 1 s"
        );
    }
    // The whole preface (and SETTINGS) is a first request's worth: a silent HTTP/2 client is
    // then left to keepalive (off here), as before.
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    assert_eq!(
        closed_after(stream, preface, Duration::from_secs(3)).await,
        None
    );
    // A request made in time is answered, and the test's channel, older than the deadline, still
    // works.
    let answer = get_jwks_from(app.addr, "127.0.0.1").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    jwks_over(&app.channel).await.unwrap();
    let scrape = Scrape::of(app.metrics_addr.unwrap()).await;
    assert_eq!(
        scrape.get("tokend_connections_first_request_timeouts_total"),
        3.0
    );
}

async fn connections_are_capped_per_address_and_in_all(backend: Backend) {
    // The test's own channel holds one connection from 127.0.0.1: four in all means three more.
    let app = TestApp::spawn_with(backend, |s| {
        s.limits.max_connections_per_address = 2;
        s.limits.max_connections = 4;
        s.metrics.addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let first = channel_from(app.addr, "127.0.0.2").await;
    let second = channel_from(app.addr, "127.0.0.2").await;
    jwks_over(&first).await.unwrap();
    jwks_over(&second).await.unwrap();
    // A third from 127.0.0.2 is closed without an answer...
    let refused = get_jwks_from(app.addr, "127.0.0.2").await;
    assert_eq!(
        refused, "",
        "a third connection from one address was served"
    );
    // ...while another address still gets one, the fourth in all...
    let other = channel_from(app.addr, "127.0.0.3").await;
    jwks_over(&other).await.unwrap();
    // ...and a fifth, from anywhere, is closed.
    let refused = get_jwks_from(app.addr, "127.0.0.4").await;
    assert_eq!(refused, "", "a fifth connection was served");
    // The connections let in keep working.
    for channel in [&first, &second, &other, &app.channel] {
        jwks_over(channel).await.unwrap();
    }
    let scrape = Scrape::of(app.metrics_addr.unwrap()).await;
    let refused = |limit: &str| {
        scrape.get(&format!(
            "tokend_connections_refused_total{{limit=\"{limit}\"}}"
        ))
    };
    assert_eq!(refused("max_connections_per_address"), 1.0);
    assert_eq!(refused("max_connections"), 1.0);
    assert_eq!(scrape.get("tokend_connections_open"), 4.0);
    // Closing one frees its place (once the server has seen it close).
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = get_jwks_from(app.addr, "127.0.0.2").await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the place never freed: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

mod sqlite {
    use crate::common::Backend::Sqlite;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_without_a_first_request_are_closed() {
        super::connections_without_a_first_request_are_closed(Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_are_capped_per_address_and_in_all() {
        super::connections_are_capped_per_address_and_in_all(Sqlite).await
    }
}
