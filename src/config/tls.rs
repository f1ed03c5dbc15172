//! `[server.tls]`: TLS on the API port, and client certificates (mTLS).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// `[server.tls]`. Unset `cert_file`: plaintext (h2c), the default, for a mesh sidecar that
/// does the TLS, or for `cargo run` on a laptop.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain, leaf first. `TOKEND__SERVER__TLS__CERT_FILE`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates that client certificates must chain to: turns on mTLS.
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: `required` (default; a client without a valid certificate is
    /// refused in the handshake) or `optional` (a certificate, when presented, must be valid).
    /// `any` (with or without `client_ca_file`): a certificate is asked for and, when
    /// presented, accepted whoever issued it (the handshake still proves the client holds its
    /// key); tokend then checks it where it is used: against `client_ca_file` for
    /// `tls_client_auth`, against the client's keys for `self_signed_tls_client_auth`. Never
    /// a gate of the port: any certificate passes the handshake.
    pub client_auth: ClientAuth,
    /// How often the files are reread; a change applies to new connections (existing ones keep
    /// theirs), a file that does not load is logged and the previous certificate kept.
    pub reload_secs: u64,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            client_ca_file: None,
            client_auth: ClientAuth::Required,
            reload_secs: 10,
        }
    }
}

/// Whether clients must present a certificate, and whether the handshake checks its issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    Optional,
    Required,
    /// Asked for, not required, and accepted from any issuer (self-signed included).
    Any,
}

/// `[server.tls]`, checked; only when TLS is on (a certificate and its key are set).
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// CA certificates client certificates must chain to; `None`: no client certificates.
    pub client_ca_file: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// How often the files are reread.
    pub reload: Duration,
}

impl TlsConfig {
    /// Whether client certificates are asked for in the handshake.
    pub fn asks_for_client_certificates(&self) -> bool {
        self.client_ca_file.is_some() || self.client_auth == ClientAuth::Any
    }

    /// Whether every client proves who it is with a certificate from `client_ca_file`.
    pub fn requires_client_certificates(&self) -> bool {
        self.client_ca_file.is_some() && self.client_auth == ClientAuth::Required
    }
}

impl TlsSettings {
    /// The TLS configuration, `None` for plaintext; a half-set one names what is missing.
    pub(super) fn resolve(&self) -> Result<Option<TlsConfig>, ConfigError> {
        let files = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            _ => {
                return Err(ConfigError(
                    "server.tls.cert_file and server.tls.key_file go together: set both (TLS) or neither (plaintext)".into(),
                ));
            }
        };
        if self.client_ca_file.is_some() && files.is_none() {
            return Err(ConfigError(
                "server.tls.client_ca_file needs server.tls.cert_file and key_file: client certificates are checked in a TLS handshake".into(),
            ));
        }
        if !(1..=3600).contains(&self.reload_secs) {
            return Err(ConfigError(
                "server.tls.reload_secs must be between 1 and 3600".into(),
            ));
        }
        Ok(files.map(|(cert_file, key_file)| TlsConfig {
            cert_file,
            key_file,
            client_ca_file: self.client_ca_file.clone(),
            client_auth: self.client_auth,
            reload: Duration::from_secs(self.reload_secs),
        }))
    }
}
