//! The key-set fetcher against a small HTTP server on 127.0.0.1 that counts its requests.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::*;

const JWKS: &str = r#"{"keys":[]}"#;

/// What the test server answers on a path: status, extra header lines, body, delay.
#[derive(Clone)]
struct Answer {
    status: &'static str,
    headers: &'static str,
    body: String,
    delay: Duration,
}

fn ok(headers: &'static str) -> Answer {
    Answer {
        status: "200 OK",
        headers,
        body: JWKS.into(),
        delay: Duration::ZERO,
    }
}

/// Serves `answer(path)` to every request; returns its base URL and its request count.
async fn server(answer: fn(&str) -> Answer) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let hits = counted.clone();
            tokio::spawn(async move {
                let mut request = vec![0u8; 4096];
                let n = socket.read(&mut request).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&request[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                hits.fetch_add(1, Ordering::SeqCst);
                let a = answer(&path);
                tokio::time::sleep(a.delay).await;
                let response = format!(
                    "HTTP/1.1 {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}connection: close\r\n\r\n{}",
                    a.status,
                    a.body.len(),
                    a.headers,
                    a.body
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (base, hits)
}

fn fetcher(limits: KeySetLimits) -> HttpKeySets {
    HttpKeySets::new(limits, Vec::new()).unwrap()
}

#[tokio::test]
async fn a_set_is_cached_for_its_max_age_and_refetched_at_most_once_per_interval() {
    let (base, hits) = server(|_| ok("cache-control: public, max-age=600\r\n")).await;
    let sets = fetcher(KeySetLimits::default());
    let url = format!("{base}/jwks");
    for _ in 0..3 {
        assert_eq!(&*sets.key_set(&url, Freshness::Cached).await.unwrap(), JWKS);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "served from the cache");
    // An unknown kid asks again, but not twice within the refetch interval.
    sets.key_set(&url, Freshness::Refetch).await.unwrap();
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "fetched moments ago: no refetch"
    );
    let eager = fetcher(KeySetLimits {
        refetch_interval: Duration::ZERO,
        ..KeySetLimits::default()
    });
    eager.key_set(&url, Freshness::Cached).await.unwrap();
    eager.key_set(&url, Freshness::Refetch).await.unwrap();
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "a refetch after the interval goes out"
    );
}

#[tokio::test]
async fn concurrent_callers_share_one_fetch() {
    let (base, hits) = server(|_| Answer {
        delay: Duration::from_millis(200),
        ..ok("")
    })
    .await;
    let sets = Arc::new(fetcher(KeySetLimits::default()));
    let url = format!("{base}/jwks");
    let calls = (0..8).map(|_| {
        let (sets, url) = (sets.clone(), url.clone());
        tokio::spawn(async move { sets.key_set(&url, Freshness::Cached).await })
    });
    for call in futures::future::join_all(calls).await {
        assert_eq!(&*call.unwrap().unwrap(), JWKS);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn failures_are_errors_unless_a_recent_copy_exists() {
    let (base, _) = server(|path| match path {
        "/missing" => Answer {
            status: "404 Not Found",
            ..ok("")
        },
        "/big" => Answer {
            body: "x".repeat(100 * 1024),
            ..ok("")
        },
        "/slow" => Answer {
            delay: Duration::from_secs(5),
            ..ok("")
        },
        "/moved" => Answer {
            status: "302 Found",
            headers: "location: http://127.0.0.1:1/jwks\r\n",
            ..ok("")
        },
        _ => ok("cache-control: no-store\r\n"),
    })
    .await;
    let sets = fetcher(KeySetLimits {
        timeout: Duration::from_millis(500),
        min_ttl: Duration::ZERO,
        refetch_interval: Duration::ZERO,
        max_stale: Duration::ZERO,
        ..KeySetLimits::default()
    });
    for (path, says) in [
        ("/missing", "404"),
        ("/big", "larger than"),
        ("/slow", "timed out"),
        ("/moved", "302"),
    ] {
        let err = sets
            .key_set(&format!("{base}{path}"), Freshness::Cached)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, KeySetError::Fetch(m) if m.contains(says)),
            "{path}: {err}"
        );
    }
    // A copy past its lifetime serves while fetches fail, for max_stale and no longer.
    let (base, _) = server(|_| ok("cache-control: max-age=0\r\n")).await;
    let url = format!("{base}/jwks");
    let tolerant = fetcher(KeySetLimits {
        min_ttl: Duration::ZERO,
        refetch_interval: Duration::ZERO,
        max_stale: Duration::from_secs(3600),
        ..KeySetLimits::default()
    });
    tolerant.key_set(&url, Freshness::Cached).await.unwrap();
    let dead = {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/jwks", closed.local_addr().unwrap()) // closed again at once
    };
    assert!(tolerant.key_set(&dead, Freshness::Cached).await.is_err());
    tolerant.remember(&dead, Arc::from(JWKS), Duration::ZERO);
    assert_eq!(
        &*tolerant.key_set(&dead, Freshness::Cached).await.unwrap(),
        JWKS
    );
    sets.remember(&dead, Arc::from(JWKS), Duration::ZERO);
    assert!(sets.key_set(&dead, Freshness::Cached).await.is_err());
}

#[test]
fn only_https_or_loopback_http_is_fetched() {
    for ok in [
        "https://keys.example.com/jwks.json",
        "http://127.0.0.1:8080/jwks",
        "http://[::1]:8080/jwks",
        "http://localhost/jwks",
    ] {
        assert!(check_url(ok).is_ok(), "{ok}");
    }
    for bad in [
        "http://keys.example.com/jwks.json",
        "http://10.0.0.1/jwks",
        "ftp://keys.example.com/jwks",
        "https://user:pw@keys.example.com/jwks",
        "/jwks",
        "not a url",
    ] {
        assert!(
            matches!(check_url(bad), Err(KeySetError::Refused(_))),
            "{bad}"
        );
    }
}

#[test]
fn max_age_is_read_and_bounded() {
    let limits = KeySetLimits::default();
    let ttl = |value: &str| {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CACHE_CONTROL, value.parse().unwrap());
        ttl_of(&headers, &limits)
    };
    assert_eq!(ttl("public, max-age=600"), Duration::from_secs(600));
    assert_eq!(ttl("max-age=5"), limits.min_ttl);
    assert_eq!(ttl("max-age=99999999"), limits.max_ttl);
    assert_eq!(ttl("no-store"), limits.min_ttl);
    assert_eq!(ttl("private"), limits.default_ttl);
    assert_eq!(ttl_of(&http::HeaderMap::new(), &limits), limits.default_ttl);
}

/// An HTTPS key server with a certificate for `localhost` from a CA made here: fetched when
/// the CA is trusted, refused (no answer read) when it is not.
#[tokio::test]
async fn https_needs_a_trusted_certificate() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}/jwks",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let mut request = vec![0u8; 4096];
                let _ = tls.read(&mut request).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{JWKS}",
                    JWKS.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    let trusting = HttpKeySets::new(KeySetLimits::default(), vec![ca.der().clone()]).unwrap();
    assert_eq!(
        &*trusting.key_set(&url, Freshness::Cached).await.unwrap(),
        JWKS
    );
    let public_roots_only = fetcher(KeySetLimits::default());
    let err = public_roots_only
        .key_set(&url, Freshness::Cached)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, KeySetError::Fetch(m) if m.contains("certificate")),
        "{err}"
    );
}
