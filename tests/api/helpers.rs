//! `TestApp`: the real server on 127.0.0.1:0 over a fresh database, with typed gRPC clients.

#![allow(dead_code)] // shared with tests/logs.rs, which uses only part of it

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokend::config::Settings;
use tokend::domain::{Clock, ManualClock};
use tokend::proto::client_service_client::ClientServiceClient;
use tokend::proto::introspection_service_client::IntrospectionServiceClient;
use tokend::proto::token_service_client::TokenServiceClient;
use tokend::proto::*;
use tokend::server::Application;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

use crate::common::{Backend, TestDb};

pub const ISSUER: &str = "urn:tokend:test";
pub const KEK: &str = "q2K5Q7m0sV9pZ8c3Xo4eW1tY6uI0oP3aS5dF7gH9jK0=";

/// Client credentials as returned once by tokend.
#[derive(Debug, Clone)]
pub struct Creds {
    pub client_id: String,
    pub client_secret: String,
}

/// A running tokend and what a test needs to talk to it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub channel: Channel,
    pub clock: Arc<ManualClock>,
    pub settings: Settings,
    pub db: TestDb,
    /// The metrics port, when the settings turn it on.
    pub metrics_addr: Option<SocketAddr>,
    /// The plaintext health-only port, when the settings turn it on.
    pub health_addr: Option<SocketAddr>,
    /// How the test's channel speaks TLS to a server with `server.tls`.
    pub client_tls: Option<ClientTlsConfig>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Settings for a test server over `db`: cheap argon2, fixed KEK and issuer, port 0.
pub fn test_settings(db: &TestDb) -> Settings {
    let mut s = Settings::default();
    s.server.addr = "127.0.0.1:0".parse().unwrap();
    s.server.shutdown_grace_secs = 2;
    s.database.url = SecretString::from(db.url.clone());
    s.database.max_connections = 5;
    s.keys.kek = Some(SecretString::from(KEK));
    s.tokens.issuer = ISSUER.into();
    s.secrets.memory_kib = 1024;
    s.secrets.iterations = 1;
    s.secrets.parallelism = 1;
    // Locked refusals are held a little, not the default second: the path runs, tests stay fast.
    s.secrets.lockout_delay_ms = 20;
    s
}

impl TestApp {
    /// Starts tokend on a fresh database of `backend`.
    pub async fn spawn(backend: Backend) -> Self {
        let db = TestDb::new(backend).await;
        let settings = test_settings(&db);
        let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
        Self::start(db, settings, clock).await
    }

    /// Starts tokend with the given settings (tests that change config).
    pub async fn spawn_with(backend: Backend, change: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_on(TestDb::new(backend).await, change).await
    }

    /// Starts tokend on a database the test made.
    pub async fn spawn_on(db: TestDb, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = test_settings(&db);
        change(&mut settings);
        let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
        Self::start(db, settings, clock).await
    }

    /// Starts tokend with TLS settings; the test's channel connects with `client`.
    pub async fn spawn_tls(
        backend: Backend,
        change: impl FnOnce(&mut Settings),
        client: ClientTlsConfig,
    ) -> Self {
        let db = TestDb::new(backend).await;
        let mut settings = test_settings(&db);
        change(&mut settings);
        let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
        Self::start_with_tls(db, settings, clock, Some(client)).await
    }

    async fn start(db: TestDb, settings: Settings, clock: Arc<ManualClock>) -> Self {
        Self::start_with_tls(db, settings, clock, None).await
    }

    async fn start_with_tls(
        db: TestDb,
        settings: Settings,
        clock: Arc<ManualClock>,
        client_tls: Option<ClientTlsConfig>,
    ) -> Self {
        let app = Application::build_with_clock(settings.clone(), clock.clone() as Arc<dyn Clock>)
            .await
            .expect("build application");
        let addr = app.local_addr();
        let metrics_addr = app.metrics_addr();
        let health_addr = app.health_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let channel = match &client_tls {
            Some(tls) => Channel::from_shared(format!("https://{addr}"))
                .unwrap()
                .tls_config(tls.clone())
                .unwrap(),
            None => Channel::from_shared(format!("http://{addr}")).unwrap(),
        }
        .connect()
        .await
        .expect("connect to tokend");
        Self {
            addr,
            channel,
            clock,
            settings,
            db,
            metrics_addr,
            health_addr,
            client_tls,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Stops the server gracefully and returns how `run_until_stopped` ended.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.server.take() {
            Some(server) => server.await.expect("server task"),
            None => Ok(()),
        }
    }

    /// Stops the server and starts a new one on the same database, settings and clock.
    pub async fn restart(mut self) -> Self {
        self.stop().await.expect("clean stop");
        let TestApp {
            db,
            settings,
            clock,
            client_tls,
            ..
        } = self;
        Self::start_with_tls(db, settings, clock, client_tls).await
    }

    /// Stops the server and starts a new one on the same database and clock with changed
    /// settings (a redeploy with new configuration).
    pub async fn restart_with(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        self.stop().await.expect("clean stop");
        let TestApp {
            db,
            mut settings,
            clock,
            ..
        } = self;
        change(&mut settings);
        Self::start(db, settings, clock).await
    }

    /// A connection to this app from the local address `from` (any of 127.0.0.0/8 works on
    /// loopback), so tests can call as different client addresses.
    pub async fn channel_from(&self, from: &str) -> Channel {
        channel_from(self.addr, from).await
    }

    /// `TokenService` as seen from the local address `from`.
    pub async fn tokens_from(&self, from: &str) -> TokenServiceClient<Channel> {
        TokenServiceClient::new(self.channel_from(from).await)
    }

    pub fn clients(&self) -> ClientServiceClient<Channel> {
        ClientServiceClient::new(self.channel.clone())
    }

    pub fn tokens(&self) -> TokenServiceClient<Channel> {
        TokenServiceClient::new(self.channel.clone())
    }

    pub fn introspection(&self) -> IntrospectionServiceClient<Channel> {
        IntrospectionServiceClient::new(self.channel.clone())
    }

    /// Runs the real binary: `tokend <args>` against this app's database.
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_env(args, &[]).await
    }

    /// Like [`TestApp::cli`], with more (or overriding) environment variables.
    pub async fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let url = self.db.url.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_tokend"))
                .args(&args)
                .env("TOKEND__DATABASE__URL", url)
                .env("TOKEND__KEYS__KEK", KEK)
                .env("TOKEND__TOKENS__ISSUER", ISSUER)
                .env("TOKEND__SECRETS__MEMORY_KIB", "1024")
                .env("TOKEND__SECRETS__ITERATIONS", "1")
                .env("RUST_LOG", "warn")
                .envs(env)
                .output()
                .expect("run tokend binary")
        })
        .await
        .unwrap()
    }

    /// `tokend client create` through the binary, as an operator bootstraps.
    pub async fn bootstrap(&self, tenant: &str, scopes: &str) -> Creds {
        let out = self
            .cli(&[
                "client",
                "create",
                "--tenant",
                tenant,
                "--name",
                "bootstrap",
                "--scopes",
                scopes,
            ])
            .await;
        assert!(
            out.status.success(),
            "client create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
        Creds {
            client_id: json["client_id"].as_str().unwrap().to_owned(),
            client_secret: json["client_secret"].as_str().unwrap().to_owned(),
        }
    }

    /// Issues a token; panics on failure.
    /// Revokes `token` with the credentials of the client it was issued to (RFC 7009).
    pub async fn revoke(&self, creds: &Creds, token: &str) {
        self.tokens()
            .revoke_token(RevokeTokenRequest {
                client_id: creds.client_id.clone(),
                client_secret: creds.client_secret.clone(),
                token: token.into(),
                token_type_hint: String::new(),
                ..Default::default()
            })
            .await
            .expect("RevokeToken");
    }

    pub async fn token(&self, creds: &Creds, scopes: &[&str]) -> String {
        self.try_token(creds, scopes, &[])
            .await
            .expect("issue token")
            .access_token
    }

    pub async fn try_token(
        &self,
        creds: &Creds,
        scopes: &[&str],
        audience: &[&str],
    ) -> Result<IssueTokenResponse, Status> {
        self.tokens()
            .issue_token(IssueTokenRequest {
                client_id: creds.client_id.clone(),
                client_secret: creds.client_secret.clone(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                audience: audience.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
    }

    /// A bootstrapped admin of `tenant` and its bearer token.
    pub async fn admin(&self, tenant: &str) -> String {
        let creds = self.bootstrap(tenant, "tokend.admin").await;
        self.token(&creds, &[]).await
    }

    /// A client created through the API.
    pub async fn create_client(&self, admin: &str, client: Client) -> (Client, Creds) {
        let resp = self
            .clients()
            .create_client(authed(
                CreateClientRequest {
                    client: Some(client),
                },
                admin,
            ))
            .await
            .expect("create client")
            .into_inner();
        let client = resp.client.unwrap();
        let creds = Creds {
            client_id: client.client_id.clone(),
            client_secret: resp.client_secret,
        };
        (client, creds)
    }

    /// A token holding `tokend.introspect`, from a client of `tenant`.
    pub async fn introspector(&self, tenant: &str) -> String {
        let creds = self.bootstrap(tenant, "tokend.introspect").await;
        self.token(&creds, &[]).await
    }

    pub async fn introspect(&self, caller: &str, token: &str) -> IntrospectResponse {
        self.introspection()
            .introspect(authed(
                IntrospectRequest {
                    token: token.into(),
                    token_type_hint: String::new(),
                    client_address: String::new(),
                    ..Default::default()
                },
                caller,
            ))
            .await
            .expect("introspect")
            .into_inner()
    }

    /// DeleteClient as `admin`.
    pub async fn try_delete_client(&self, admin: &str, client_id: &str) -> Result<(), Status> {
        self.clients()
            .delete_client(authed(
                DeleteClientRequest {
                    client_id: client_id.into(),
                },
                admin,
            ))
            .await
            .map(|_| ())
    }

    /// GetClient as `admin`; panics on failure.
    pub async fn get_client(&self, admin: &str, client_id: &str) -> Client {
        let request = GetClientRequest {
            client_id: client_id.into(),
        };
        let response = self.clients().get_client(authed(request, admin)).await;
        response.expect("get client").into_inner().client.unwrap()
    }

    /// Today's usage of a client, as `admin` sees it (GetClientUsage).
    pub async fn usage_today(&self, admin: &str, client_id: &str) -> DailyUsage {
        let request = GetClientUsageRequest {
            client_id: client_id.into(),
            days: 0,
        };
        let usage =
            tokend::proto::audit_service_client::AuditServiceClient::new(self.channel.clone())
                .get_client_usage(authed(request, admin))
                .await
                .expect("GetClientUsage")
                .into_inner();
        usage.days.into_iter().next().expect("a day of usage")
    }

    /// UpdateClient as `admin` with the given mask paths.
    pub async fn update_client(
        &self,
        admin: &str,
        client: Client,
        paths: &[&str],
    ) -> Result<Client, Status> {
        let update_mask = prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        };
        let request = UpdateClientRequest {
            client: Some(client),
            update_mask: Some(update_mask),
        };
        let response = self.clients().update_client(authed(request, admin)).await?;
        Ok(response.into_inner().client.unwrap())
    }

    /// The published JWK Set.
    pub async fn jwks(&self) -> GetJwksResponse {
        self.introspection()
            .get_jwks(GetJwksRequest {})
            .await
            .expect("get jwks")
            .into_inner()
    }

    /// Moves the server's clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

/// A connection to `addr` from the local address `from`.
pub async fn channel_from(addr: SocketAddr, from: &str) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .local_address(Some(from.parse().unwrap()))
        .connect()
        .await
        .expect("connect from a chosen local address")
}

/// An IssueToken request with these credentials.
pub fn issue_request(creds: &Creds) -> IssueTokenRequest {
    IssueTokenRequest {
        client_id: creds.client_id.clone(),
        client_secret: creds.client_secret.clone(),
        scopes: vec![],
        audience: vec![],
        ..Default::default()
    }
}

/// A client with the given name, tenant and scopes; everything else default.
pub fn client(tenant: &str, name: &str, scopes: &[&str]) -> Client {
    Client {
        tenant: tenant.into(),
        name: name.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// Wraps `msg` with `authorization: Bearer <token>`.
pub fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut request = Request::new(msg);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// The OAuth 2.0 error code a failed call carried, from metadata and from ErrorInfo, which must
/// agree.
pub fn oauth2_error(status: &Status) -> String {
    use tonic_types::StatusExt as _;
    let from_metadata = status
        .metadata()
        .get("oauth2-error")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let from_details = status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default();
    assert_eq!(
        from_metadata, from_details,
        "metadata and ErrorInfo disagree"
    );
    from_metadata
}

/// A second tokend on the same database and clock as a `TestApp`: another replica. Stopped
/// gracefully by `stop`, or told to stop when dropped.
pub struct Replica {
    pub addr: SocketAddr,
    pub channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Replica {
    /// Starts a replica of `app` with its settings, changed by `change`.
    pub async fn start(app: &TestApp, change: impl FnOnce(&mut Settings)) -> Self {
        Self::start_with_clock(app, app.clock.clone(), change).await
    }

    /// Like [`Replica::start`], but on its own clock (a replica whose time differs).
    pub async fn start_with_clock(
        app: &TestApp,
        clock: Arc<ManualClock>,
        change: impl FnOnce(&mut Settings),
    ) -> Self {
        let mut settings = app.settings.clone();
        change(&mut settings);
        let built = Application::build_with_clock(settings, clock as Arc<dyn Clock>)
            .await
            .expect("build replica");
        let addr = built.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(built.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .expect("connect to replica");
        Self {
            addr,
            channel,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Stops the replica and checks it stopped cleanly.
    pub async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
