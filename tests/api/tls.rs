//! TLS and mTLS on the API port, with certificates made here (rcgen): the handshake for gRPC
//! (ALPN h2) and plain HTTP/1.1 on one port, client certificates required or optional, a wrong
//! CA refused, `introspection.require_auth = false` allowed only with required certificates,
//! and certificates reloaded from their files without dropping connections.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokend::config::ClientAuth;
use tokend::proto::introspection_service_client::IntrospectionServiceClient;
use tokend::proto::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::common::{Backend, eventually_some};
use crate::helpers::*;

/// A certificate authority of the test's own.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
#[derive(Clone)]
struct Leaf {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn server(&self, name: &str) -> Leaf {
        self.leaf(name, ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn client(&self, name: &str) -> Leaf {
        self.leaf(name, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// The files the server reads, in a directory the test owns.
struct Files {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl Files {
    fn new(server: &Leaf, client_ca: &Ca) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let files = Self {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
            ca: dir.path().join("ca.crt"),
            _dir: dir,
        };
        files.install(server);
        std::fs::write(&files.ca, client_ca.pem()).unwrap();
        files
    }

    /// Replaces the certificate and key as cert-manager does: new files renamed into place.
    fn install(&self, server: &Leaf) {
        replace(&self.cert, &server.cert);
        replace(&self.key, &server.key);
    }
}

fn replace(path: &Path, contents: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// TLS client configuration trusting `ca`, presenting `identity` if given.
fn client_tls(ca: &Ca, identity: Option<&Leaf>) -> ClientTlsConfig {
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.pem()))
        .domain_name("localhost");
    match identity {
        Some(leaf) => config.identity(Identity::from_pem(&leaf.cert, &leaf.key)),
        None => config,
    }
}

async fn channel(
    addr: SocketAddr,
    tls: ClientTlsConfig,
) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

/// Whether a gRPC call over `tls` gets an answer (GetJwks needs no caller).
async fn call_works(addr: SocketAddr, tls: ClientTlsConfig) -> bool {
    let Ok(channel) = channel(addr, tls).await else {
        return false;
    };
    IntrospectionServiceClient::new(channel)
        .get_jwks(GetJwksRequest {})
        .await
        .is_ok()
}

/// A raw TLS connection (tokio-rustls) offering `alpn`: the protocol agreed and the server's
/// certificate, for HTTP/1.1 and for watching reloads.
async fn raw_tls(
    addr: SocketAddr,
    ca: &Ca,
    alpn: &[u8],
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    Vec<u8>,
) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.issuer.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    let (_, session) = stream.get_ref();
    assert_eq!(session.alpn_protocol(), Some(alpn));
    let leaf = session.peer_certificates().unwrap()[0].to_vec();
    (stream, leaf)
}

fn tls_settings(
    files: &Files,
    client_ca: bool,
    auth: ClientAuth,
) -> impl FnOnce(&mut tokend::config::Settings) {
    let (cert, key, ca) = (files.cert.clone(), files.key.clone(), files.ca.clone());
    move |s| {
        s.server.tls.cert_file = Some(cert);
        s.server.tls.key_file = Some(key);
        s.server.tls.client_ca_file = client_ca.then_some(ca);
        s.server.tls.client_auth = auth;
        s.server.tls.reload_secs = 1;
    }
}

/// Server certificate only: gRPC over h2 and plain HTTP/1.1 on the same port, a client that
/// does not trust the CA or speaks plaintext gets nothing.
async fn tls_serves_grpc_and_http(backend: Backend) {
    let ca = Ca::new("tokend test CA");
    let files = Files::new(&ca.server("tokend"), &ca);
    let app = TestApp::spawn_tls(
        backend,
        tls_settings(&files, false, ClientAuth::Required),
        client_tls(&ca, None),
    )
    .await;
    // The whole flow over TLS.
    let admin = app.admin("acme").await;
    let (_, creds) = app
        .create_client(&admin, client("acme", "svc", &["read:*"]))
        .await;
    let token = app.token(&creds, &["read:a"]).await;
    let introspector = app.introspector("acme").await;
    assert!(app.introspect(&introspector, &token).await.active);
    // HTTP/1.1 over TLS: the JWKS.
    let (mut stream, _) = raw_tls(app.addr, &ca, b"http/1.1").await;
    stream
        .write_all(
            b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"keys\""));
    // A client trusting another CA, and a plaintext client, are refused.
    assert!(!call_works(app.addr, client_tls(&Ca::new("other CA"), None)).await);
    let plaintext = Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await;
    if let Ok(plaintext) = plaintext {
        let answer = IntrospectionServiceClient::new(plaintext)
            .get_jwks(GetJwksRequest {})
            .await;
        assert!(answer.is_err(), "plaintext got an answer from the TLS port");
    }
}

/// Client certificates required: none, or one from another CA, is refused in the handshake;
/// one from the configured CA works, and then Introspect may be open to every such caller.
async fn mtls_required_refuses_clients_without_a_valid_certificate(backend: Backend) {
    let ca = Ca::new("tokend test CA");
    let files = Files::new(&ca.server("tokend"), &ca);
    let alice = ca.client("alice");
    let change = tls_settings(&files, true, ClientAuth::Required);
    let app = TestApp::spawn_tls(
        backend,
        |s| {
            change(s);
            s.introspection.require_auth = false;
        },
        client_tls(&ca, Some(&alice)),
    )
    .await;
    assert!(!call_works(app.addr, client_tls(&ca, None)).await);
    let stranger = Ca::new("another CA");
    assert!(!call_works(app.addr, client_tls(&ca, Some(&stranger.client("mallory")))).await);
    assert!(call_works(app.addr, client_tls(&ca, Some(&alice))).await);
    // Introspect without a caller token: the certificate is the credential.
    let token = app.token(&app.bootstrap("acme", "read").await, &[]).await;
    let answer = app
        .introspection()
        .introspect(IntrospectRequest {
            token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(answer.active);
}

/// Client certificates optional: none is fine, but one from another CA is still refused.
async fn mtls_optional_still_checks_presented_certificates(backend: Backend) {
    let ca = Ca::new("tokend test CA");
    let files = Files::new(&ca.server("tokend"), &ca);
    let app = TestApp::spawn_tls(
        backend,
        tls_settings(&files, true, ClientAuth::Optional),
        client_tls(&ca, None),
    )
    .await;
    assert!(call_works(app.addr, client_tls(&ca, None)).await);
    assert!(call_works(app.addr, client_tls(&ca, Some(&ca.client("alice")))).await);
    let stranger = Ca::new("another CA");
    assert!(!call_works(app.addr, client_tls(&ca, Some(&stranger.client("mallory")))).await);
}

/// A renewed certificate, renamed into place, is served to new connections within the reload
/// period while an established connection keeps working; a broken file is ignored (the last
/// good certificate stays).
async fn certificates_reload_without_dropping_connections(backend: Backend) {
    let ca = Ca::new("tokend test CA");
    let first = ca.server("tokend first");
    let files = Files::new(&first, &ca);
    let app = TestApp::spawn_tls(
        backend,
        tls_settings(&files, false, ClientAuth::Required),
        client_tls(&ca, None),
    )
    .await;
    let (_, served) = raw_tls(app.addr, &ca, b"h2").await;
    let established = app.channel.clone();
    let jwks = || {
        let channel = established.clone();
        async move {
            IntrospectionServiceClient::new(channel)
                .get_jwks(GetJwksRequest {})
                .await
        }
    };
    jwks().await.unwrap();

    let second = ca.server("tokend second");
    files.install(&second);
    let (renewed, _) = eventually_some(
        "the new certificate to be served",
        Duration::from_secs(10),
        async || {
            let (_, leaf) = raw_tls(app.addr, &ca, b"h2").await;
            (leaf != served).then_some(leaf)
        },
    )
    .await;
    jwks()
        .await
        .expect("the established connection survives the reload");

    // A broken key: logged, the second certificate kept.
    replace(&files.key, "not a key");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, leaf) = raw_tls(app.addr, &ca, b"h2").await;
    assert_eq!(leaf, renewed);
    jwks().await.unwrap();
}

/// With TLS on the API port, `server.health_addr` answers `grpc.health.v1` in plaintext (what
/// Kubernetes' gRPC probes speak), with the API port's statuses, and nothing else.
async fn a_plaintext_health_port_beside_tls(backend: Backend) {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let ca = Ca::new("tokend test CA");
    let files = Files::new(&ca.server("tokend"), &ca);
    let tls = tls_settings(&files, false, ClientAuth::Required);
    let app = TestApp::spawn_tls(
        backend,
        |s| {
            tls(s);
            s.server.health_addr = Some("127.0.0.1:0".parse().unwrap());
        },
        client_tls(&ca, None),
    )
    .await;
    let health = app.health_addr.expect("a health port");
    let plaintext = Channel::from_shared(format!("http://{health}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    for service in [
        "",
        "tokend.v1.IntrospectionService",
        "tokend.v1.TokenService",
    ] {
        let status = HealthClient::new(plaintext.clone())
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let err = IntrospectionServiceClient::new(plaintext)
        .get_jwks(GetJwksRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    // The plain-HTTP probes, for load balancers that speak neither TLS nor gRPC.
    for path in ["/healthz", "/readyz"] {
        let r = crate::oauth_http::http(health, &format!("GET {path}"), &[], "").await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let r = crate::oauth_http::http(health, "GET /oauth2/token", &[], "").await;
    assert_eq!(r.status, 404, "only health here");
}

/// `introspection.require_auth = false` without required client certificates: one line, exit
/// code 64, nothing bound.
async fn open_introspection_needs_required_client_certificates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let out = tokio::task::spawn_blocking({
        let url = app.db.url.clone();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_tokend"))
                .env("TOKEND__DATABASE__URL", url)
                .env("TOKEND__KEYS__KEK", KEK)
                .env("TOKEND__SERVER__ADDR", "127.0.0.1:0")
                .env("TOKEND__INTROSPECTION__REQUIRE_AUTH", "false")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("introspection.require_auth"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

for_each_backend!(
    tls_serves_grpc_and_http,
    mtls_required_refuses_clients_without_a_valid_certificate,
    mtls_optional_still_checks_presented_certificates,
    certificates_reload_without_dropping_connections,
    a_plaintext_health_port_beside_tls,
    open_introspection_needs_required_client_certificates,
);
