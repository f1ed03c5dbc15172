//! What the measured phases stand on: the connections, the admin token, the temporary clients
//! (created through ClientService, so the bench works against any deployment) and the tokens
//! they issue. Everything created is remembered at once, so an interrupted run still cleans up.

use std::time::Duration;

use anyhow::Context as _;
use secrecy::{ExposeSecret as _, SecretString};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use super::assertions::{ClientKey, Issuer, WORKLOAD_SUBJECT, assertion_request};
use super::{BenchError, BenchOptions, Credentials, Rpc};
use crate::proto::client_service_client::ClientServiceClient;
use crate::proto::token_service_client::TokenServiceClient;
use crate::proto::{
    AccessTokenFormat, Client, CreateClientRequest, DeleteClientRequest, FederatedCredential,
    IssueTokenRequest,
};

/// Access token lifetime of the temporary clients: long enough that no token expires mid-run
/// (a large cold pool takes a while to issue), within the 24 h a JWT may live.
const TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// Credentials of a client the bench created (or was given).
#[derive(Debug, Clone)]
pub(crate) struct ClientCreds {
    pub client_id: String,
    pub client_secret: String,
}

impl ClientCreds {
    /// An IssueToken request for these credentials, built once and cloned per call.
    pub fn issue_request(&self, scopes: &[&str]) -> IssueTokenRequest {
        IssueTokenRequest {
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            audience: Vec::new(),
            ..Default::default()
        }
    }
}

/// Opens `connections` separate HTTP/2 connections: one `connect()` each, so each really is its
/// own TCP connection rather than a clone sharing one. From the local address `from` when
/// given; over TLS trusting `ca_pem` when given (an `https://` target).
pub(crate) async fn connect_from(
    target: &str,
    connections: usize,
    from: Option<std::net::IpAddr>,
    ca_pem: Option<&str>,
) -> Result<Vec<Channel>, BenchError> {
    let usage =
        |e: &dyn std::fmt::Display| BenchError::Usage(format!("invalid --target `{target}`: {e}"));
    let mut endpoint = Endpoint::from_shared(target.to_owned())
        .map_err(|e| usage(&e))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .local_address(from);
    if let Some(pem) = ca_pem {
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(pem));
        endpoint = endpoint.tls_config(tls).map_err(|e| usage(&e))?;
    }
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| BenchError::Unreachable {
                target: target.to_owned(),
                reason: error_chain(&e),
            })?;
        channels.push(channel);
    }
    Ok(channels)
}

/// `err: cause: cause`, on one line.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Which temporary clients a plan needs: (JWT, opaque, refresh-enabled).
fn needs(options: &BenchOptions, plan: &[Rpc]) -> (bool, bool, bool) {
    let has = |rpc| plan.contains(&rpc);
    let no_caller = options.caller_token.is_none();
    let jwt = (has(Rpc::Introspect) && (options.token.is_none() || no_caller))
        || (has(Rpc::ExtAuthz) && options.token.is_none())
        || (has(Rpc::IntrospectOpaque) && no_caller)
        || has(Rpc::IntrospectCold)
        || has(Rpc::Issue)
        || options.background_bad_secrets > 0;
    let opaque = has(Rpc::IntrospectOpaque);
    let refresh = has(Rpc::IssueRefresh) || has(Rpc::Refresh);
    (jwt, opaque, refresh)
}

/// Fails with one line naming the flags when an RPC needs admin credentials that are missing.
pub(crate) fn check_credentials(options: &BenchOptions) -> Result<(), BenchError> {
    if options.admin.is_some() {
        return Ok(());
    }
    let admin_flags = "--client-id and --client-secret of an admin client (scope tokend.admin; \
                       or TOKEND_BENCH_CLIENT_ID and TOKEND_BENCH_CLIENT_SECRET)";
    for rpc in options.plan() {
        let missing = match rpc {
            Rpc::Health => continue,
            Rpc::Introspect if options.token.is_some() && options.caller_token.is_some() => {
                continue;
            }
            Rpc::Introspect => format!("--token and --caller-token, or {admin_flags}"),
            Rpc::ExtAuthz if options.token.is_some() => continue,
            Rpc::IssuePkjwt | Rpc::IssueFederated => admin_flags.to_owned(),
            Rpc::ExtAuthz => format!("--token, or {admin_flags}"),
            _ => admin_flags.to_owned(),
        };
        return Err(BenchError::Usage(format!("rpc `{rpc}` needs {missing}")));
    }
    if options.background_bad_secrets > 0 {
        return Err(BenchError::Usage(format!(
            "--background-bad-secrets needs {admin_flags}"
        )));
    }
    Ok(())
}

/// Connections, temporary clients and the tokens the phases introspect.
pub(crate) struct Fixtures {
    channels: Vec<Channel>,
    admin: Option<Credentials>,
    given_token: Option<SecretString>,
    given_caller: Option<SecretString>,
    /// Temporary clients created so far, deleted by `cleanup`.
    created: Vec<String>,
    pub jwt: Option<ClientCreds>,
    pub opaque: Option<ClientCreds>,
    pub refresh: Option<ClientCreds>,
    /// The client the background wrong secrets name with `bad_secrets_for_neighbour`.
    pub neighbour: Option<ClientCreds>,
    /// The token `introspect` presents: `--token`, or `issued_jwt`.
    pub warm_jwt: Option<String>,
    /// A token of the JWT client.
    issued_jwt: Option<String>,
    /// A token of the opaque client, for `introspect-opaque`.
    pub opaque_token: Option<String>,
    /// `Bearer <token>` with scope `tokend.introspect`, built once.
    pub caller: Option<MetadataValue<Ascii>>,
    /// `client_address` Introspect is sent with: a loopback address with `--client-policy`
    /// (inside the temporary clients' allow-list), else none.
    pub client_address: String,
    /// `issue-pkjwt`: the key-only client and its key.
    pub pkjwt: Option<(String, ClientKey)>,
    /// `issue-federated`: the workload's IssueToken request (its client_id and token).
    pub federated: Option<IssueTokenRequest>,
    /// `ext-authz-quota`: a token of a client with an API quota no run reaches.
    pub quota_token: Option<String>,
}

impl Fixtures {
    /// Nothing created yet; `prepare` does the calls.
    pub fn new(channels: Vec<Channel>, options: &BenchOptions) -> Self {
        Self {
            channels,
            admin: options.admin.clone(),
            given_token: options.token.clone(),
            given_caller: options.caller_token.clone(),
            created: Vec::new(),
            jwt: None,
            opaque: None,
            refresh: None,
            neighbour: None,
            warm_jwt: None,
            issued_jwt: None,
            opaque_token: None,
            caller: None,
            client_address: if options.client_policy {
                "127.0.0.1".into()
            } else {
                String::new()
            },
            pkjwt: None,
            federated: None,
            quota_token: None,
        }
    }

    /// The connections, for round-robin use by the workers.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// The first connection, for setup calls.
    pub fn channel(&self) -> Channel {
        self.channels[0].clone()
    }

    /// Creates the temporary clients `plan` needs and issues the tokens it introspects.
    pub async fn prepare(&mut self, plan: &[Rpc], options: &BenchOptions) -> anyhow::Result<()> {
        let (jwt, opaque, refresh) = needs(options, plan);
        let bench_client = |name: &str, scopes: &[&str]| {
            let mut spec = bench_client(name, scopes);
            if options.client_policy {
                with_policy(&mut spec);
            }
            spec
        };
        if jwt {
            let spec = bench_client("bench-jwt", &["tokend.introspect", "bench.read"]);
            self.jwt = Some(self.create(spec).await?);
        }
        if opaque {
            let mut spec = bench_client("bench-opaque", &["bench.read"]);
            spec.access_token_format = AccessTokenFormat::Opaque as i32;
            self.opaque = Some(self.create(spec).await?);
        }
        if options.background_bad_secrets > 0 && options.bad_secrets_for_neighbour {
            let spec = bench_client("bench-stale-neighbour", &["bench.read"]);
            self.neighbour = Some(self.create(spec).await?);
        }
        if refresh {
            let mut spec = bench_client("bench-refresh", &["bench.read"]);
            spec.refresh_token_ttl = Some(proto_duration(Duration::from_secs(3600)));
            self.refresh = Some(self.create(spec).await?);
        }
        if plan.contains(&Rpc::ExtAuthzQuota) {
            let mut spec = bench_client("bench-quota", &["bench.read"]);
            spec.api_rate_limit_per_minute = POLICY_RATE_PER_MINUTE;
            let creds = self.create(spec).await?;
            self.quota_token = Some(self.issue(creds.issue_request(&[])).await?);
        }
        if plan.contains(&Rpc::IssuePkjwt) {
            let key = ClientKey::generate()?;
            let mut spec = bench_client("bench-pkjwt", &["bench.read"]);
            spec.auth_methods = vec!["private_key_jwt".into()];
            spec.jwks = key.jwks();
            let creds = self.create(spec).await?;
            self.pkjwt = Some((creds.client_id, key));
        }
        if let (true, Some(url)) = (
            plan.contains(&Rpc::IssueFederated),
            &options.federation_issuer,
        ) {
            let issuer = Issuer::start(url).await?;
            let mut spec = bench_client("bench-federated", &["bench.read"]);
            spec.auth_methods = vec!["federated_jwt".into()];
            spec.federated_credentials = vec![FederatedCredential {
                issuer: issuer.issuer.clone(),
                subject: WORKLOAD_SUBJECT.into(),
            }];
            let creds = self.create(spec).await.context(
                "creating the federated client: does tokend trust --federation-issuer \
                 ([[federation.issuers]])?",
            )?;
            let (_, now) = self.server_issuer_and_time().await?;
            let request = assertion_request(&creds.client_id, issuer.token(now)?);
            self.issue(request.clone()).await.context(
                "the workload token was refused: tokend needs jwks_uri <issuer>/jwks and \
                 audiences [\"tokend-bench\"] for --federation-issuer",
            )?;
            self.federated = Some(request);
        }
        self.issue_fixture_tokens().await
    }

    /// tokend's `iss` and its clock now (the `iat` of a fresh token), read (not verified: an
    /// audience to name and a time to sign assertions at) from a new admin token. Signed at
    /// the server's time, assertions fit whatever clock it keeps.
    pub async fn server_issuer_and_time(&self) -> anyhow::Result<(String, i64)> {
        #[derive(serde::Deserialize)]
        struct Iss {
            iss: String,
            iat: i64,
        }
        let bearer = self.admin_token().await?;
        let token = bearer
            .to_str()
            .ok()
            .and_then(|b| b.strip_prefix("Bearer "))
            .context("admin token")?;
        let claims = jsonwebtoken::dangerous::insecure_decode_claims::<Iss>(token)
            .context("the admin token is not a JWT; its issuer cannot be read")?;
        Ok((claims.iss, claims.iat))
    }

    /// The warm JWT, the opaque token and the caller's bearer metadata.
    async fn issue_fixture_tokens(&mut self) -> anyhow::Result<()> {
        let jwt_token = match &self.jwt {
            Some(creds) => Some(self.issue(creds.issue_request(&[])).await?),
            None => None,
        };
        if let Some(creds) = &self.opaque {
            self.opaque_token = Some(self.issue(creds.issue_request(&[])).await?);
        }
        self.warm_jwt = match &self.given_token {
            Some(token) => Some(token.expose_secret().to_owned()),
            None => jwt_token.clone(),
        };
        let caller = match &self.given_caller {
            Some(token) => Some(token.expose_secret().to_owned()),
            None => jwt_token.clone(),
        };
        self.issued_jwt = jwt_token;
        if let Some(caller) = caller {
            let value = format!("Bearer {caller}")
                .parse()
                .map_err(|_| BenchError::Usage("--caller-token is not valid metadata".into()))?;
            self.caller = Some(value);
        }
        Ok(())
    }

    /// A JWT to time bare signature verification with, if the run has one.
    pub fn jwt_sample(&self) -> Option<&str> {
        [self.warm_jwt.as_deref(), self.issued_jwt.as_deref()]
            .into_iter()
            .flatten()
            .find(|token| jsonwebtoken::decode_header(token).is_ok())
    }

    /// IssueToken on the first connection; an empty access token is a failure.
    pub async fn issue(&self, request: IssueTokenRequest) -> anyhow::Result<String> {
        let client_id = request.client_id.clone();
        let response = TokenServiceClient::new(self.channel())
            .issue_token(request)
            .await
            .map_err(|s| status_error(&format!("IssueToken for client {client_id}"), &s))?
            .into_inner();
        anyhow::ensure!(
            !response.access_token.is_empty(),
            "IssueToken for client {client_id} answered an empty access token"
        );
        Ok(response.access_token)
    }

    /// A fresh admin token: issued per use, so a long run never outlives it.
    async fn admin_token(&self) -> anyhow::Result<MetadataValue<Ascii>> {
        let admin = self
            .admin
            .as_ref()
            .context("admin credentials are required")?;
        let creds = ClientCreds {
            client_id: admin.client_id.clone(),
            client_secret: admin.client_secret.expose_secret().to_owned(),
        };
        let token = self
            .issue(creds.issue_request(&[]))
            .await
            .context("the admin credentials (--client-id/--client-secret) were refused")?;
        format!("Bearer {token}")
            .parse()
            .context("admin token is not valid metadata")
    }

    /// CreateClient as the admin; the new id is remembered before anything else can fail.
    async fn create(&mut self, spec: Client) -> anyhow::Result<ClientCreds> {
        let mut request = Request::new(CreateClientRequest { client: Some(spec) });
        request
            .metadata_mut()
            .insert("authorization", self.admin_token().await?);
        let response = ClientServiceClient::new(self.channel())
            .create_client(request)
            .await
            .map_err(|s| status_error("CreateClient (does the admin have tokend.admin?)", &s))?
            .into_inner();
        let client = response.client.context("CreateClient answered no client")?;
        self.created.push(client.client_id.clone());
        Ok(ClientCreds {
            client_id: client.client_id,
            client_secret: response.client_secret,
        })
    }

    /// Deletes every temporary client (or names them when kept); tries all before failing.
    pub async fn cleanup(&mut self, keep: bool) -> anyhow::Result<()> {
        if self.created.is_empty() {
            return Ok(());
        }
        if keep {
            eprintln!("kept temporary clients: {}", self.created.join(", "));
            return Ok(());
        }
        let auth = self.admin_token().await?;
        let mut failed = Vec::new();
        for client_id in std::mem::take(&mut self.created) {
            let mut request = Request::new(DeleteClientRequest {
                client_id: client_id.clone(),
            });
            request.metadata_mut().insert("authorization", auth.clone());
            let deleted = ClientServiceClient::new(self.channel())
                .delete_client(request)
                .await;
            if let Err(status) = deleted {
                failed.push(format!("{client_id} ({:?})", status.code()));
            }
        }
        anyhow::ensure!(
            failed.is_empty(),
            "could not delete temporary clients: {}",
            failed.join(", ")
        );
        Ok(())
    }
}

/// A temporary client: caller's tenant (left empty), issuer audience, long-lived tokens.
fn bench_client(name: &str, scopes: &[&str]) -> Client {
    Client {
        name: name.into(),
        description: "temporary client of `tokend bench`; safe to delete".into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        access_token_ttl: Some(proto_duration(TOKEN_TTL)),
        ..Client::default()
    }
}

/// Client policy that every call passes but that is checked in full: an allow-list (of every
/// address, so the bench works from anywhere) and rate limits no run reaches.
fn with_policy(spec: &mut Client) {
    spec.allowed_cidrs = vec!["0.0.0.0/0".into(), "::/0".into()];
    spec.rate_limit_per_minute = POLICY_RATE_PER_MINUTE;
    spec.refresh_rate_limit_per_minute = POLICY_RATE_PER_MINUTE;
}

/// The rate limit of `--client-policy` clients: far above what one machine can ask for.
pub(crate) const POLICY_RATE_PER_MINUTE: u32 = 1_000_000_000;

fn proto_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: 0,
    }
}

/// A failed setup call as one line: what was attempted, the code and the server's message.
pub(crate) fn status_error(what: &str, status: &Status) -> anyhow::Error {
    anyhow::anyhow!("{what} failed: {:?}: {}", status.code(), status.message())
}
