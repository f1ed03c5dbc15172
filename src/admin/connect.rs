//! Where `tokend admin` connects and as whom.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::output::AdminError;
use crate::proto::IssueTokenRequest;
use crate::proto::token_service_client::TokenServiceClient;

/// The connection and credential flags every `tokend admin` command takes.
#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// tokend's gRPC URL: `http://` (plaintext, h2c) or `https://` (TLS).
    #[arg(
        long,
        env = "TOKEND_SERVER",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub server: String,
    /// PEM CA certificate(s) trusted for an `https://` server, besides the public web's.
    #[arg(long, value_name = "FILE", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate for mTLS (with --client-key).
    #[arg(long, value_name = "FILE", global = true, requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, value_name = "FILE", global = true, requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// The admin client's id (a client with scope `tokend.admin`).
    #[arg(long, env = "TOKEND_CLIENT_ID", global = true)]
    pub client_id: Option<String>,
    /// The admin client's secret (prefer the environment or --client-secret-file: a flag shows
    /// in the process list and the shell history).
    #[arg(
        long,
        env = "TOKEND_CLIENT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub client_secret: Option<String>,
    /// A file holding the admin client's secret.
    #[arg(
        long,
        value_name = "FILE",
        global = true,
        conflicts_with = "client_secret"
    )]
    pub client_secret_file: Option<PathBuf>,
    /// An access token with scope `tokend.admin`, instead of client credentials.
    #[arg(long, env = "TOKEND_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

/// A connection and the bearer metadata of the admin's token: fetched once, and again shortly
/// before it expires when a command runs that long (`audit tail`).
pub struct Session {
    pub channel: Channel,
    bearer: std::sync::Mutex<Bearer>,
    /// The client credentials the token came from (`None`: a token was given).
    credentials: Option<(String, String)>,
}

struct Bearer {
    value: MetadataValue<Ascii>,
    /// When to fetch a new one (`None`: never, a given token).
    renew_at: Option<tokio::time::Instant>,
}

/// How long before its expiry a token is replaced.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

impl Session {
    /// `message` with the admin's `authorization`.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let bearer = self.bearer.lock().unwrap_or_else(|e| e.into_inner());
        request
            .metadata_mut()
            .insert("authorization", bearer.value.clone());
        request
    }

    /// Fetches a new token when the current one is about to expire.
    pub async fn renew_if_due(&self) -> Result<(), AdminError> {
        let due = {
            let bearer = self.bearer.lock().unwrap_or_else(|e| e.into_inner());
            bearer
                .renew_at
                .is_some_and(|at| tokio::time::Instant::now() >= at)
        };
        if let (true, Some((id, secret))) = (due, &self.credentials) {
            let fresh = fetch_token(&self.channel, id, secret.clone()).await?;
            *self.bearer.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        }
        Ok(())
    }
}

fn read(flag: &str, path: &PathBuf) -> Result<String, AdminError> {
    std::fs::read_to_string(path)
        .map_err(|e| AdminError::usage(format!("{flag} {}: {e}", path.display())))
}

impl ConnectArgs {
    /// Connects, then gets the admin's token (or takes the one given).
    pub async fn open(self) -> Result<Session, AdminError> {
        let channel = self.connect().await?;
        let (bearer, credentials) = match (&self.token, &self.client_id) {
            (Some(token), _) => (
                Bearer {
                    value: bearer(&SecretString::from(token.trim().to_owned()))?,
                    renew_at: None,
                },
                None,
            ),
            (None, Some(client_id)) => {
                let secret = match (&self.client_secret, &self.client_secret_file) {
                    (Some(secret), _) => secret.clone(),
                    (None, Some(file)) => read("--client-secret-file", file)?.trim().to_owned(),
                    (None, None) => {
                        return Err(AdminError::usage(
                            "no client secret: set TOKEND_CLIENT_SECRET or --client-secret-file \
                             (or give a token: TOKEND_TOKEN / --token)",
                        ));
                    }
                };
                let fetched = fetch_token(&channel, client_id, secret.clone()).await?;
                (fetched, Some((client_id.clone(), secret)))
            }
            (None, None) => {
                return Err(AdminError::usage(
                    "no credentials: set TOKEND_CLIENT_ID and TOKEND_CLIENT_SECRET (or \
                     --client-secret-file) of a client with scope tokend.admin, or TOKEND_TOKEN",
                ));
            }
        };
        Ok(Session {
            channel,
            bearer: std::sync::Mutex::new(bearer),
            credentials,
        })
    }

    async fn connect(&self) -> Result<Channel, AdminError> {
        let usage = |e: &dyn std::fmt::Display| {
            AdminError::usage(format!("--server {:?}: {e}", self.server))
        };
        let mut endpoint = Endpoint::from_shared(self.server.clone())
            .map_err(|e| usage(&e))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30));
        if self.server.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_enabled_roots();
            if let Some(ca) = &self.ca_cert {
                tls = tls.ca_certificate(Certificate::from_pem(read("--ca-cert", ca)?));
            }
            if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
                tls = tls.identity(Identity::from_pem(
                    read("--client-cert", cert)?,
                    read("--client-key", key)?,
                ));
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| usage(&e))?;
        } else if self.ca_cert.is_some() || self.client_cert.is_some() {
            return Err(AdminError::usage(
                "--ca-cert and --client-cert need an https:// --server",
            ));
        }
        endpoint.connect().await.map_err(|e| {
            AdminError::unavailable(format!("cannot reach tokend at {}: {e}", self.server))
        })
    }
}

fn bearer(token: &SecretString) -> Result<MetadataValue<Ascii>, AdminError> {
    format!("Bearer {}", token.expose_secret())
        .parse()
        .map_err(|_| AdminError::usage("the token is not valid header text"))
}

/// The admin's access token, by client credentials, and when to replace it.
async fn fetch_token(
    channel: &Channel,
    client_id: &str,
    client_secret: String,
) -> Result<Bearer, AdminError> {
    let request = IssueTokenRequest {
        client_id: client_id.to_owned(),
        client_secret,
        ..Default::default()
    };
    let issued = TokenServiceClient::new(channel.clone())
        .issue_token(request)
        .await
        .map_err(|s| AdminError::status("getting the admin's token", &s))?
        .into_inner();
    let lifetime = Duration::from_secs(u64::try_from(issued.expires_in).unwrap_or(0));
    Ok(Bearer {
        value: bearer(&SecretString::from(issued.access_token))?,
        renew_at: Some(tokio::time::Instant::now() + lifetime.saturating_sub(RENEW_BEFORE)),
    })
}
