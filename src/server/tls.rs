//! TLS on the API port: rustls with the aws-lc-rs provider the rest of the tree uses, ALPN `h2`
//! and `http/1.1` (gRPC and the OAuth 2.0 / JWKS routes share the port), client certificates
//! optional or required, and the files reread every `reload_secs`: a changed certificate (say,
//! cert-manager renewing it in place) applies to new handshakes while established connections
//! keep theirs; a file that does not load is logged and the previous configuration kept.
//!
//! The handshake runs in a task of its own per connection, bounded by [`HANDSHAKE_TIMEOUT`],
//! so a slow or silent client never holds up the accept loop.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::connections::{self, Admitted, ConnectionGate};
use crate::config::{ClientAuth, TlsConfig};
use crate::domain::ClientCa;

/// Longest a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's TLS configuration, replaced when its files change; with its client CA, the
/// check of client certificates a trusted proxy forwards (`ClientCa`).
pub struct ReloadingTls {
    files: TlsConfig,
    current: RwLock<(Arc<ServerConfig>, Contents, Option<ClientVerifier>)>,
    /// How often the files are reread.
    pub period: Duration,
}

impl ReloadingTls {
    /// Loads the configured files. A file that does not load is an error here (at startup),
    /// and only a logged warning on a later reload.
    pub fn load(files: &TlsConfig) -> anyhow::Result<Arc<Self>> {
        let contents = read_all(files)?;
        let (config, client_ca) = build(files, &contents)?;
        Ok(Arc::new(Self {
            files: files.clone(),
            current: RwLock::new((Arc::new(config), contents, client_ca)),
            period: files.reload,
        }))
    }

    /// The configuration for the next handshake.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// Rereads the files; when they changed and load, the next handshakes use them. Returns
    /// whether the configuration was replaced.
    pub fn reload(&self) -> bool {
        let contents = match read_all(&self.files) {
            Ok(contents) => contents,
            Err(err) => {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "TLS files unreadable; keeping the current certificate"
                );
                return false;
            }
        };
        if self.current.read().unwrap_or_else(|e| e.into_inner()).1 == contents {
            return false;
        }
        match build(&self.files, &contents) {
            Ok((config, client_ca)) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) =
                    (Arc::new(config), contents, client_ca);
                tracing::info!(cert = %self.files.cert_file.display(), "TLS certificate reloaded; new connections use it");
                true
            }
            Err(err) => {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "the changed TLS files do not load; keeping the current certificate"
                );
                // Remember the bad contents too, so the same bad files are not retried (and
                // logged) every period; a fix changes them again.
                self.current.write().unwrap_or_else(|e| e.into_inner()).1 = contents;
                false
            }
        }
    }

    /// Rereads the files every period until aborted.
    pub async fn reload_every_period(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(self.period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let tls = self.clone();
            // File reads and certificate parsing are blocking work.
            let _ = tokio::task::spawn_blocking(move || tls.reload()).await;
        }
    }
}

/// What the files held when last read (what "changed" compares, and what is parsed: the
/// bytes read once, so a file replaced mid-reload is never half old, half new).
#[derive(PartialEq, Eq)]
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

fn read_all(files: &TlsConfig) -> anyhow::Result<Contents> {
    let read =
        |path: &Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    Ok(Contents {
        cert: read(&files.cert_file)?,
        key: read(&files.key_file)?,
        client_ca: files.client_ca_file.as_deref().map(read).transpose()?,
    })
}

impl ReloadingTls {
    /// The check of forwarded client certificates against `client_ca_file`, when mTLS is on.
    pub fn client_ca(self: &Arc<Self>) -> Option<Arc<dyn ClientCa>> {
        self.files
            .asks_for_client_certificates()
            .then(|| self.clone() as Arc<dyn ClientCa>)
    }
}

impl std::fmt::Debug for ReloadingTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingTls")
            .field("cert_file", &self.files.cert_file)
            .finish_non_exhaustive()
    }
}

impl ClientCa for ReloadingTls {
    fn handshake_verified(&self) -> bool {
        self.files.client_auth != ClientAuth::Any
    }

    /// The same verification as the handshake's, with the CA files as last loaded: the chain
    /// (the certificate, through the intermediates it came with, to a CA in the file),
    /// validity now and the clientAuth usage.
    fn issued(&self, der: &[u8], intermediates: &[Vec<u8>]) -> bool {
        let verifier = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .2
            .clone();
        verifier.is_some_and(|v| {
            let cert = CertificateDer::from(der.to_vec());
            let intermediates: Vec<CertificateDer<'_>> = intermediates
                .iter()
                .map(|link| CertificateDer::from(link.as_slice()))
                .collect();
            v.verify_client_cert(&cert, &intermediates, UnixTime::now())
                .is_ok()
        })
    }
}

/// The server configuration, and the verifier of client certificates when mTLS is on.
type Built = (ServerConfig, Option<ClientVerifier>);

/// A verifier of client certificates against `client_ca_file`.
type ClientVerifier = Arc<dyn ClientCertVerifier>;

fn build(files: &TlsConfig, contents: &Contents) -> anyhow::Result<Built> {
    let certs = parse_certs(&files.cert_file, &contents.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&contents.key)
        .with_context(|| format!("{}: no PEM private key", files.key_file.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let mut client_ca = None;
    let builder = match (&files.client_ca_file, &contents.client_ca) {
        (Some(ca), Some(ca_pem)) => {
            let mut roots = RootCertStore::empty();
            for cert in parse_certs(ca, ca_pem)? {
                roots
                    .add(cert)
                    .with_context(|| format!("{}: not a usable CA certificate", ca.display()))?;
            }
            let roots = Arc::new(roots);
            let forwarded =
                WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
            client_ca = Some(forwarded.build().context("client verifier")?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let verifier = match files.client_auth {
                ClientAuth::Required => verifier.build().context("client verifier")?,
                ClientAuth::Optional => verifier
                    .allow_unauthenticated()
                    .build()
                    .context("client verifier")?,
                ClientAuth::Any => Arc::new(AnyClientCertificate::new(&provider)),
            };
            builder.with_client_cert_verifier(verifier)
        }
        _ if files.client_auth == ClientAuth::Any => {
            builder.with_client_cert_verifier(Arc::new(AnyClientCertificate::new(&provider)))
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).with_context(|| {
        format!(
            "{} and {} do not make a usable certificate and key",
            files.cert_file.display(),
            files.key_file.display()
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((config, client_ca))
}

/// `client_auth = "any"`: asks for a client certificate, does not require one, and accepts
/// any (self-signed included) without looking at its issuer. The handshake's signature is
/// still checked with the certificate's key, so a client proves it holds that key; what the
/// certificate is worth is decided where it is used (`ClientCertificate::chain_trusted`, the
/// client's keys).
#[derive(Debug)]
struct AnyClientCertificate {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl AnyClientCertificate {
    fn new(provider: &rustls::crypto::CryptoProvider) -> Self {
        Self {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn parse_certs(path: &Path, pem: &[u8]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not PEM certificates", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{}: no certificate in it",
        path.display()
    );
    Ok(certs)
}

/// TLS connections accepted on `listener` and admitted by `gate`, handshakes done, for the
/// HTTP server to serve. The first-request deadline runs from accept, so it covers the
/// handshake too (which has its own, shorter, [`HANDSHAKE_TIMEOUT`]). Ends, closing the
/// listener, when the server stops taking them.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<ReloadingTls>,
    gate: Arc<ConnectionGate>,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<Admitted<TlsStream<TcpStream>>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (stream, permit) = tokio::select! {
                accepted = connections::accept(&listener, &gate) => accepted,
                () = tx.closed() => return,
            };
            let peer = stream.peer_addr().ok();
            let acceptor = TlsAcceptor::from(tls.config());
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(permit.wrap(stream))).await;
                    }
                    Ok(Err(err)) => {
                        tracing::debug!(?peer, error = %err, "TLS handshake failed");
                    }
                    Err(_) => tracing::debug!(?peer, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
