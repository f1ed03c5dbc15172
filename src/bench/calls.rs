//! One request per RPC kind, sent again and again by a closed-loop worker, and how each kind is
//! prepared: messages and metadata are built once here, so a worker's per-call cost is a clone.
//! Answers are checked too, so a broken server never looks fast.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use envoy_types::ext_authz::v3::pb::CheckRequest;
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::assertions::RequestPool;
use super::envoy::check_request;
use super::load::{self, Progress};
use super::setup::{ClientCreds, Fixtures, status_error};
use super::{BenchOptions, Rpc};
use crate::proto::introspection_service_client::IntrospectionServiceClient;
use crate::proto::token_service_client::TokenServiceClient;
use crate::proto::{IntrospectRequest, IssueTokenRequest, RefreshTokenRequest};

/// How one call ended.
pub(crate) enum Step {
    /// A correct answer.
    Ok,
    /// A gRPC error (its code name) or a wrong answer (`inactive`, `empty_access_token`...).
    Failed(String),
    /// Nothing left to send: the cold pool is used up.
    Exhausted,
}

/// Distinct tokens for `introspect-cold`, each handed out exactly once.
pub(crate) struct Pool {
    tokens: Vec<String>,
    next: AtomicUsize,
    /// `client_address` sent with each token (empty: none).
    address: String,
}

/// One worker's request, with everything it needs prebuilt.
pub(crate) enum Call {
    Health(HealthClient<Channel>),
    Introspect {
        client: IntrospectionServiceClient<Channel>,
        request: IntrospectRequest,
        auth: MetadataValue<Ascii>,
    },
    /// Measured calls take the next pool token; warm-up calls present `warm`, so warming up
    /// spends none of the pool.
    IntrospectCold {
        client: IntrospectionServiceClient<Channel>,
        pool: Arc<Pool>,
        warm: IntrospectRequest,
        auth: MetadataValue<Ascii>,
    },
    Issue {
        client: TokenServiceClient<Channel>,
        request: IssueTokenRequest,
        expect_refresh: bool,
    },
    /// `request.refresh_token` is always the latest of the worker's own family.
    Refresh {
        client: TokenServiceClient<Channel>,
        request: RefreshTokenRequest,
        reissue: IssueTokenRequest,
    },
    /// Envoy's Check of one request bearing the warm JWT: must be allowed. (Boxed: it is
    /// much larger than the other requests.)
    ExtAuthz {
        client: AuthorizationClient<Channel>,
        request: Box<CheckRequest>,
    },
    /// IssueToken with the next unused request of a pool (`issue-pkjwt`: each assertion works
    /// once); warm-up draws from the pool too.
    IssuePooled {
        client: TokenServiceClient<Channel>,
        pool: Arc<RequestPool>,
    },
    /// A wrong secret for an existing client: must answer UNAUTHENTICATED.
    BadSecret {
        client: TokenServiceClient<Channel>,
        request: IssueTokenRequest,
    },
}

fn failed(status: &Status) -> Step {
    Step::Failed(format!("{:?}", status.code()))
}

fn check(ok: bool, error: &str) -> Step {
    if ok {
        Step::Ok
    } else {
        Step::Failed(error.into())
    }
}

fn authed<T>(message: T, auth: &MetadataValue<Ascii>) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", auth.clone());
    request
}

async fn introspect(
    client: &mut IntrospectionServiceClient<Channel>,
    message: IntrospectRequest,
    auth: &MetadataValue<Ascii>,
) -> Step {
    match client.introspect(authed(message, auth)).await {
        Ok(response) => check(response.get_ref().active, "inactive"),
        Err(status) => failed(&status),
    }
}

/// Check; an answer whose `google.rpc.Status` is not OK is a denial, counted by its code.
async fn ext_authz(client: &mut AuthorizationClient<Channel>, request: CheckRequest) -> Step {
    match client.check(request).await {
        Ok(r) => match r.get_ref().status.as_ref().map_or(-1, |s| s.code) {
            0 => Step::Ok,
            code => Step::Failed(format!("denied_{:?}", Code::from_i32(code))),
        },
        Err(status) => failed(&status),
    }
}

async fn health(client: &mut HealthClient<Channel>) -> Step {
    let request = HealthCheckRequest {
        service: String::new(),
    };
    match client.check(request).await {
        Ok(r) => check(
            r.get_ref().status == ServingStatus::Serving as i32,
            "not_serving",
        ),
        Err(status) => failed(&status),
    }
}

async fn issue(
    client: &mut TokenServiceClient<Channel>,
    request: IssueTokenRequest,
    expect_refresh: bool,
) -> Step {
    match client.issue_token(request).await {
        Ok(r) if r.get_ref().access_token.is_empty() => check(false, "empty_access_token"),
        Ok(r) => check(
            !expect_refresh || !r.get_ref().refresh_token.is_empty(),
            "empty_refresh_token",
        ),
        Err(status) => failed(&status),
    }
}

/// RefreshToken; on success the successor replaces the token presented.
async fn refresh(
    client: &mut TokenServiceClient<Channel>,
    request: &mut RefreshTokenRequest,
) -> Step {
    match client.refresh_token(request.clone()).await {
        Ok(r) => {
            let r = r.into_inner();
            if r.access_token.is_empty() || r.refresh_token.is_empty() {
                return check(false, "empty_token");
            }
            request.refresh_token = r.refresh_token;
            Step::Ok
        }
        Err(status) => failed(&status),
    }
}

async fn bad_secret(client: &mut TokenServiceClient<Channel>, request: IssueTokenRequest) -> Step {
    match client.issue_token(request).await {
        Ok(_) => check(false, "wrong_secret_accepted"),
        // Refused: the wrong secret itself, or the lockout it ran into.
        Err(status)
            if matches!(
                status.code(),
                Code::Unauthenticated | Code::ResourceExhausted
            ) =>
        {
            Step::Ok
        }
        Err(status) => failed(&status),
    }
}

impl Pool {
    /// The next unused token, as a request; `None` once all are used.
    fn take(&self) -> Option<IntrospectRequest> {
        let token = self.tokens.get(self.next.fetch_add(1, Ordering::Relaxed))?;
        Some(token_request(token, &self.address))
    }
}

impl Call {
    /// Sends one request and judges the answer. `measuring` is false during warm-up.
    pub async fn once(&mut self, measuring: bool) -> Step {
        match self {
            Call::Health(client) => health(client).await,
            Call::Introspect {
                client,
                request,
                auth,
            } => introspect(client, request.clone(), auth).await,
            Call::IntrospectCold {
                client,
                pool,
                warm,
                auth,
            } => {
                if !measuring {
                    return introspect(client, warm.clone(), auth).await;
                }
                match pool.take() {
                    Some(message) => introspect(client, message, auth).await,
                    None => Step::Exhausted,
                }
            }
            Call::Issue {
                client,
                request,
                expect_refresh,
            } => issue(client, request.clone(), *expect_refresh).await,
            Call::Refresh {
                client, request, ..
            } => refresh(client, request).await,
            Call::ExtAuthz { client, request } => ext_authz(client, (**request).clone()).await,
            Call::BadSecret { client, request } => bad_secret(client, request.clone()).await,
            Call::IssuePooled { client, pool } => match pool.take() {
                Some(request) => issue(client, request, false).await,
                None => Step::Exhausted,
            },
        }
    }

    /// After a failed call, outside the timed region: a refresh worker whose family may be spent
    /// or revoked starts a new one, so one error does not turn every later call into an error.
    pub async fn recover(&mut self) {
        if let Call::Refresh {
            client,
            request,
            reissue,
        } = self
            && let Ok(r) = client.issue_token(reissue.clone()).await
        {
            request.refresh_token = r.into_inner().refresh_token;
        }
    }
}

/// The workers' calls for one phase of `rpc`, one per in-flight request, spread round robin
/// over the connections.
pub(crate) async fn prepare(
    rpc: Rpc,
    fixtures: &Fixtures,
    options: &BenchOptions,
) -> anyhow::Result<Vec<Call>> {
    let n = options.concurrency;
    let calls = match rpc {
        Rpc::Health => (0..n)
            .map(|i| Call::Health(HealthClient::new(channel(fixtures, i))))
            .collect(),
        Rpc::Introspect => introspect_calls(fixtures, n, fixtures.warm_jwt.as_deref())?,
        Rpc::IntrospectOpaque => introspect_calls(fixtures, n, fixtures.opaque_token.as_deref())?,
        Rpc::IntrospectCold => cold_calls(fixtures, options).await?,
        Rpc::Issue => issue_calls(fixtures, n, false)?,
        Rpc::IssueRefresh => issue_calls(fixtures, n, true)?,
        Rpc::Refresh => families(fixtures, n).await?,
        Rpc::IssuePkjwt => {
            let (client_id, key) = fixtures.pkjwt.as_ref().context("no key-only client")?;
            let (aud, now) = fixtures.server_issuer_and_time().await?;
            let pool = Arc::new(RequestPool::new(key.requests(
                client_id,
                &aud,
                now,
                // the warm-up draws from the pool too
                options.cold_pool_size() + 20_000,
            )?));
            (0..n)
                .map(|i| Call::IssuePooled {
                    client: TokenServiceClient::new(channel(fixtures, i)),
                    pool: pool.clone(),
                })
                .collect()
        }
        Rpc::IssueFederated => {
            let request = fixtures.federated.clone().context("no federated client")?;
            (0..n)
                .map(|i| Call::Issue {
                    client: TokenServiceClient::new(channel(fixtures, i)),
                    request: request.clone(),
                    expect_refresh: false,
                })
                .collect()
        }
        Rpc::ExtAuthz | Rpc::ExtAuthzQuota => {
            let (token, path) = match rpc {
                Rpc::ExtAuthz => (fixtures.warm_jwt.as_deref(), "/orders/42"),
                _ => (fixtures.quota_token.as_deref(), "/quota/42"),
            };
            let token = token.context("no token for ext-authz")?;
            let request = Box::new(check_request(token, &fixtures.client_address, path));
            (0..n)
                .map(|i| Call::ExtAuthz {
                    client: AuthorizationClient::new(channel(fixtures, i)),
                    request: request.clone(),
                })
                .collect()
        }
    };
    Ok(calls)
}

/// Worker `i`'s connection.
fn channel(fixtures: &Fixtures, i: usize) -> Channel {
    let channels = fixtures.channels();
    channels[i % channels.len()].clone()
}

fn caller(fixtures: &Fixtures) -> anyhow::Result<MetadataValue<Ascii>> {
    fixtures
        .caller
        .clone()
        .context("no caller token for Introspect")
}

fn introspect_calls(
    fixtures: &Fixtures,
    n: usize,
    token: Option<&str>,
) -> anyhow::Result<Vec<Call>> {
    let request = token_request(
        token.context("no token to introspect")?,
        &fixtures.client_address,
    );
    let auth = caller(fixtures)?;
    Ok((0..n)
        .map(|i| Call::Introspect {
            client: IntrospectionServiceClient::new(channel(fixtures, i)),
            request: request.clone(),
            auth: auth.clone(),
        })
        .collect())
}

async fn cold_calls(fixtures: &Fixtures, options: &BenchOptions) -> anyhow::Result<Vec<Call>> {
    let pool = Arc::new(issue_pool(fixtures, options).await?);
    let warm = token_request(
        fixtures.warm_jwt.as_deref().context("no warm token")?,
        &fixtures.client_address,
    );
    let auth = caller(fixtures)?;
    Ok((0..options.concurrency)
        .map(|i| Call::IntrospectCold {
            client: IntrospectionServiceClient::new(channel(fixtures, i)),
            pool: pool.clone(),
            warm: warm.clone(),
            auth: auth.clone(),
        })
        .collect())
}

/// IssueToken on the JWT client, or with `expect_refresh` on the refresh-enabled one.
fn issue_calls(fixtures: &Fixtures, n: usize, expect_refresh: bool) -> anyhow::Result<Vec<Call>> {
    let creds = if expect_refresh {
        &fixtures.refresh
    } else {
        &fixtures.jwt
    };
    let request = creds
        .as_ref()
        .context("no client to issue for")?
        .issue_request(&[]);
    Ok((0..n)
        .map(|i| Call::Issue {
            client: TokenServiceClient::new(channel(fixtures, i)),
            request: request.clone(),
            expect_refresh,
        })
        .collect())
}

fn token_request(token: &str, client_address: &str) -> IntrospectRequest {
    IntrospectRequest {
        token: token.to_owned(),
        token_type_hint: String::new(),
        client_address: client_address.to_owned(),
        client_certificate_thumbprint: String::new(),
    }
}

/// One refresh family per worker, each started by its own IssueToken.
async fn families(fixtures: &Fixtures, n: usize) -> anyhow::Result<Vec<Call>> {
    let creds = fixtures.refresh.as_ref().context("no refresh client")?;
    let reissue = creds.issue_request(&[]);
    let starts = (0..n).map(|i| {
        let channel = channel(fixtures, i);
        let reissue = reissue.clone();
        async move {
            let mut client = TokenServiceClient::new(channel);
            let issued = client.issue_token(reissue.clone()).await;
            let issued = issued.map_err(|s| status_error("IssueToken for a refresh family", &s))?;
            let refresh_token = issued.into_inner().refresh_token;
            anyhow::ensure!(
                !refresh_token.is_empty(),
                "IssueToken returned no refresh token"
            );
            let request = refresh_request(creds, refresh_token);
            Ok(Call::Refresh {
                client,
                request,
                reissue,
            })
        }
    });
    futures::future::try_join_all(starts).await
}

fn refresh_request(creds: &ClientCreds, refresh_token: String) -> RefreshTokenRequest {
    RefreshTokenRequest {
        client_id: creds.client_id.clone(),
        client_secret: creds.client_secret.clone(),
        refresh_token,
        scopes: Vec::new(),
        ..Default::default()
    }
}

/// Issues the `introspect-cold` pool: distinct JWTs, `concurrency` IssueTokens in flight, with
/// a progress line, failing at the first refused call.
async fn issue_pool(fixtures: &Fixtures, options: &BenchOptions) -> anyhow::Result<Pool> {
    let size = options.cold_pool_size();
    let creds = fixtures
        .jwt
        .as_ref()
        .context("no JWT client for the pool")?;
    let request = creds.issue_request(&["bench.read"]);
    let progress = Progress::start(
        "introspect-cold: issuing token pool",
        options.progress,
        size,
    );
    let issued = load::fill(
        fixtures.channels(),
        options.concurrency,
        size,
        request,
        &progress,
    )
    .await;
    progress.finish();
    let tokens = issued?;
    Ok(Pool {
        tokens,
        next: AtomicUsize::new(0),
        address: fixtures.client_address.clone(),
    })
}
