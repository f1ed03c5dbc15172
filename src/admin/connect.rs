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

/// A connection and the bearer metadata of the admin's token, fetched once for the run.
pub struct Session {
    pub channel: Channel,
    pub bearer: MetadataValue<Ascii>,
}

impl Session {
    /// `message` with the admin's `authorization`.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.bearer.clone());
        request
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
        let token = match (&self.token, &self.client_id) {
            (Some(token), _) => SecretString::from(token.trim().to_owned()),
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
                fetch_token(&channel, client_id, secret).await?
            }
            (None, None) => {
                return Err(AdminError::usage(
                    "no credentials: set TOKEND_CLIENT_ID and TOKEND_CLIENT_SECRET (or \
                     --client-secret-file) of a client with scope tokend.admin, or TOKEND_TOKEN",
                ));
            }
        };
        let bearer = format!("Bearer {}", token.expose_secret())
            .parse()
            .map_err(|_| AdminError::usage("the token is not valid header text"))?;
        Ok(Session { channel, bearer })
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

/// The admin's access token, by client credentials.
async fn fetch_token(
    channel: &Channel,
    client_id: &str,
    client_secret: String,
) -> Result<SecretString, AdminError> {
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
    Ok(SecretString::from(issued.access_token))
}
