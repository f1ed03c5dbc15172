//! RFC 8705 mutual-TLS client authentication: clients that send only their client_id and
//! prove themselves with a certificate, over tokend's own mTLS (gRPC and HTTP) or forwarded by
//! a trusted proxy in `x-forwarded-client-cert`; `refusals`: every way a certificate is
//! refused (always the `invalid_client` of a wrong secret, counted by the lockout alike);
//! `bound`: certificate-bound access tokens (RFC 8705 section 3).

mod any_issuer;
mod bound;
mod edge_verify;
mod endpoints;
mod refusals;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use tokend::config::ClientAuth;
use tokend::proto::token_service_client::TokenServiceClient;
use tokend::proto::*;
use tonic::Request;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::common::Backend;
use crate::helpers::*;

/// The address tests call from as the trusted proxy (`server.trusted_proxies`).
pub(super) const PROXY: &str = "127.0.0.2";
/// The SPIFFE ID the test workload's certificate carries.
pub(crate) const SPIFFE_ID: &str = "spiffe://prod.example/ns/payments/sa/billing";

/// A test CA.
pub(crate) struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, PEM and DER.
#[derive(Clone)]
pub(crate) struct Leaf {
    pub cert: String,
    pub key: String,
    pub der: Vec<u8>,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// An intermediate CA issued by this one.
    pub fn intermediate(&self, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer =
            CertifiedIssuer::signed_by(params, KeyPair::generate().unwrap(), &self.issuer).unwrap();
        Ca { issuer }
    }

    /// tokend's server certificate.
    pub fn server(&self) -> Leaf {
        let params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        self.sign(
            params,
            ExtendedKeyUsagePurpose::ServerAuth,
            &KeyPair::generate().unwrap(),
        )
    }

    /// A workload's certificate: CN `billing`, the SPIFFE ID `uri` as a URI SAN.
    pub fn workload(&self, uri: &str) -> Leaf {
        self.sign(
            workload_params(uri),
            ExtendedKeyUsagePurpose::ClientAuth,
            &KeyPair::generate().unwrap(),
        )
    }

    fn sign(
        &self,
        mut params: CertificateParams,
        usage: ExtendedKeyUsagePurpose,
        key: &KeyPair,
    ) -> Leaf {
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

fn workload_params(uri: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Example");
    params
        .distinguished_name
        .push(DnType::CommonName, "billing");
    params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    params
}

/// A self-signed workload certificate with `key` (what `self_signed_tls_client_auth` uses).
pub(super) fn self_signed(key: &KeyPair) -> Leaf {
    let mut params = workload_params(SPIFFE_ID);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.self_signed(key).unwrap();
    Leaf {
        cert: cert.pem(),
        key: key.serialize_pem(),
        der: cert.der().to_vec(),
    }
}

/// The JWK Set holding an Ed25519 key pair's public key.
pub(super) fn jwks_of(key: &KeyPair) -> String {
    use base64::Engine as _;
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.public_key_raw());
    serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x}]}).to_string()
}

/// The `x-forwarded-client-cert` value Envoy sends for `leaf` (`Hash`, `Cert`, `Subject`,
/// `URI`), after an element of an earlier hop.
pub(super) fn xfcc(leaf: &Leaf) -> String {
    let hash: String = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &leaf.der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cert = urlencode_pem(&leaf.cert);
    format!(
        "By=spiffe://edge;Hash=0000,By=spiffe://prod.example/ns/tokend/sa/tokend;Hash={hash};\
         Cert=\"{cert}\";Subject=\"CN=billing,O=Example\";URI={SPIFFE_ID}"
    )
}

/// PEM text URL-encoded, as Envoy forwards `Cert` and `Chain`.
pub(super) fn urlencode_pem(pem: &str) -> String {
    pem.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The RFC 8705 x5t#S256 of `leaf`.
pub(super) fn x5t(leaf: &Leaf) -> String {
    use base64::Engine as _;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &leaf.der);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// A client of `acme` authenticating with `tls_client_auth`, bound to `SPIFFE_ID`.
pub(super) fn mtls_client(name: &str) -> Client {
    let mut c = client("acme", name, &["read:*", "tokend.introspect"]);
    c.auth_methods = vec!["tls_client_auth".into()];
    c.tls_client_auth_san_uri = SPIFFE_ID.into();
    c
}

/// An IssueToken request with the client_id only.
pub(super) fn id_only(client_id: &str) -> IssueTokenRequest {
    IssueTokenRequest {
        client_id: client_id.into(),
        ..Default::default()
    }
}

/// `message` with `x-forwarded-client-cert: value`.
pub(super) fn forwarded<T>(message: T, value: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-forwarded-client-cert", value.parse().unwrap());
    request
}

/// The server's TLS files.
pub(crate) struct TlsFiles {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

/// tokend with TLS, client certificates from `ca` optional (so admin calls need none), and
/// `PROXY` as a trusted proxy; the test's own channel presents no certificate.
pub(crate) async fn mtls_app(backend: Backend, ca: &Ca) -> (TestApp, TlsFiles) {
    mtls_app_with(backend, ca, ClientAuth::Optional).await
}

/// [`mtls_app`] with another `server.tls.client_auth`.
pub(crate) async fn mtls_app_with(
    backend: Backend,
    ca: &Ca,
    client_auth: ClientAuth,
) -> (TestApp, TlsFiles) {
    let dir = tempfile::tempdir().unwrap();
    let server = ca.server();
    let files = TlsFiles {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
        ca: dir.path().join("ca.crt"),
        _dir: dir,
    };
    std::fs::write(&files.cert, &server.cert).unwrap();
    std::fs::write(&files.key, &server.key).unwrap();
    std::fs::write(&files.ca, ca.pem()).unwrap();
    let (cert, key, ca_file) = (files.cert.clone(), files.key.clone(), files.ca.clone());
    let app = TestApp::spawn_tls(
        backend,
        move |s| {
            s.server.tls.cert_file = Some(cert);
            s.server.tls.key_file = Some(key);
            s.server.tls.client_ca_file = Some(ca_file);
            s.server.tls.client_auth = client_auth;
            s.server.trusted_proxies = vec![format!("{PROXY}/32")];
        },
        tls_config(ca, None),
    )
    .await;
    (app, files)
}

/// tokend in plaintext behind a mesh sidecar: only `PROXY` is trusted.
pub(super) async fn proxied_app(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |s| {
        s.server.trusted_proxies = vec![format!("{PROXY}/32")];
    })
    .await
}

fn tls_config(ca: &Ca, identity: Option<&Leaf>) -> ClientTlsConfig {
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.pem()))
        .domain_name("localhost");
    match identity {
        Some(leaf) => config.identity(Identity::from_pem(&leaf.cert, &leaf.key)),
        None => config,
    }
}

/// `TokenService` over TLS presenting `leaf`.
pub(super) async fn tokens_with(
    addr: SocketAddr,
    ca: &Ca,
    leaf: &Leaf,
) -> TokenServiceClient<Channel> {
    let channel = Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls_config(ca, Some(leaf)))
        .unwrap()
        .connect()
        .await
        .expect("an mTLS connection");
    TokenServiceClient::new(channel)
}

/// A form POST over HTTPS presenting `leaf`: status and JSON body.
pub(super) async fn https_post(
    addr: SocketAddr,
    ca: &Ca,
    leaf: &Leaf,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.issuer.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = vec![CertificateDer::from(leaf.der.clone())];
    let key = PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let response = client
        .post(format!("https://localhost:{}{path}", addr.port()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .expect("an HTTPS answer");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or_default())
}

/// Over tokend's own mTLS a `tls_client_auth` client sends its client_id only, over gRPC and
/// over HTTP; its tokens are as any client's.
async fn tls_client_auth_over_tokends_own_mtls(backend: Backend) {
    let ca = Ca::new("mesh CA");
    let (app, _files) = mtls_app(backend, &ca).await;
    let admin = app.admin("acme").await;
    let (created, creds) = app.create_client(&admin, mtls_client("billing")).await;
    assert!(
        creds.client_secret.is_empty(),
        "a certificate client has no secret"
    );
    assert_eq!(created.auth_methods, ["tls_client_auth"]);
    assert_eq!(created.tls_client_auth_san_uri, SPIFFE_ID);
    let id = created.client_id.as_str();
    let workload = ca.workload(SPIFFE_ID);

    let issued = tokens_with(app.addr, &ca, &workload)
        .await
        .issue_token(id_only(id))
        .await
        .expect("a token for the client_id and its certificate")
        .into_inner();
    let introspector = app.introspector("acme").await;
    let active = app.introspect(&introspector, &issued.access_token).await;
    assert!(active.active);
    assert_eq!(active.client_id, id);

    let (status, body) = https_post(
        app.addr,
        &ca,
        &workload,
        "/oauth2/token",
        &format!("grant_type=client_credentials&client_id={id}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    // The client's usage says how it authenticated, both times.
    let today = app.usage_today(&admin, id).await;
    assert_eq!(
        today.authentications.get("tls_client_auth"),
        Some(&2),
        "{today:?}"
    );
    // The same connection without the client_id names no client: refused as ever.
    let (status, body) = https_post(
        app.addr,
        &ca,
        &workload,
        "/oauth2/token",
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
}

/// Behind a mesh sidecar: the certificate a trusted proxy forwards in
/// `x-forwarded-client-cert` authenticates the client; the same header from any other peer is
/// ignored (a forgery), and then the client has no proof at all.
async fn a_trusted_proxy_forwards_the_certificate_and_a_forged_header_is_ignored(backend: Backend) {
    let app = proxied_app(backend).await;
    // Bootstrapped offline, as an operator would: `tokend client create` with the flags.
    let out = app
        .cli(&[
            "client",
            "create",
            "--tenant",
            "acme",
            "--name",
            "billing",
            "--scopes",
            "read",
            "--auth-methods",
            "tls_client_auth",
            "--tls-client-auth-san-uri",
            SPIFFE_ID,
            "--tls-client-certificate-bound-access-tokens",
        ])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["client_secret"], serde_json::Value::Null);
    let id = created["client_id"].as_str().unwrap();
    let workload = Ca::new("mesh CA").workload(SPIFFE_ID);
    let header = xfcc(&workload);

    let mut proxy = app.tokens_from(PROXY).await;
    let issued = proxy
        .issue_token(forwarded(id_only(id), &header))
        .await
        .expect("a token for the certificate the trusted proxy forwarded")
        .into_inner();
    let introspector = app.introspector("acme").await;
    let answer = app.introspect(&introspector, &issued.access_token).await;
    assert_eq!(answer.cnf.expect("bound").x5t_s256, x5t(&workload));
    let err = app
        .tokens()
        .issue_token(forwarded(id_only(id), &header))
        .await
        .unwrap_err();
    assert_eq!(oauth2_error(&err), "invalid_client");
    // Over HTTP alike.
    let body = format!("grant_type=client_credentials&client_id={id}");
    let headers = [("x-forwarded-client-cert", header.as_str())];
    let forged = crate::oauth_http::token(app.addr, &headers, &body).await;
    assert_eq!(
        (forged.status, forged.error().as_str()),
        (401, "invalid_client")
    );
    // A trusted proxy's header that cannot be read is refused, never read as no certificate.
    let err = proxy
        .issue_token(forwarded(id_only(id), "Hash=zz;Cert=\"junk"))
        .await
        .unwrap_err();
    assert_eq!(oauth2_error(&err), "invalid_request");
    // RFC 8414 metadata names both methods and bound tokens.
    let metadata = crate::oauth_http::http(
        app.addr,
        "GET /.well-known/oauth-authorization-server",
        &[],
        "",
    )
    .await;
    let metadata = metadata.json();
    let methods = metadata["token_endpoint_auth_methods_supported"].to_string();
    assert!(
        methods.contains("\"tls_client_auth\"") && methods.contains("self_signed_tls_client_auth")
    );
    assert_eq!(metadata["tls_client_certificate_bound_access_tokens"], true);
}

for_each_backend!(
    tls_client_auth_over_tokends_own_mtls,
    a_trusted_proxy_forwards_the_certificate_and_a_forged_header_is_ignored,
);
