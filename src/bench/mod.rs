//! `tokend bench`: a load generator for sizing a tokend deployment, like `redis-benchmark`.
//!
//! It is a plain gRPC client of the public API, nothing more: it never touches the store or the
//! domain, so it measures exactly what a caller of any deployment sees. With admin credentials it
//! creates the temporary clients each RPC needs and deletes them afterwards.
//!
//! - `setup`  — connections, the admin token, temporary clients and the tokens they issue.
//! - `calls`  — one closed-loop request per RPC kind and how each is prepared.
//! - `assertions` — the secretless phases' keys, assertions and the workload issuer.
//! - `load`   — runs a phase: warm-up, measurement, progress, background bad secrets.
//! - `verify` — the bare JWT signature verification baseline, on one thread.
//! - `report` — the serialisable report and its table.
//!
//! Every result is also given as a ratio to `grpc.health.v1.Health/Check` measured in the same
//! run, because absolute numbers on a shared machine drift while ratios mostly do not.

mod assertions;
mod calls;
mod envoy;
mod load;
mod report;
mod setup;
mod verify;

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;

pub use report::{BenchReport, BenchSettings, Latency, RpcReport, VerifyBaseline, render_table};

use load::{Limit, PhaseSpec};
use setup::Fixtures;

/// The RPCs the bench can drive; `--rpc` names them in kebab case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rpc {
    /// `grpc.health.v1.Health/Check`: the transport baseline every result is compared with.
    Health,
    /// Introspect one warm JWT again and again.
    Introspect,
    /// Introspect one opaque token again and again (a hash lookup instead of a signature).
    IntrospectOpaque,
    /// Introspect every token of a pre-issued pool exactly once, so nothing can be cached.
    IntrospectCold,
    /// IssueToken with client credentials, access token only.
    Issue,
    /// IssueToken on a client with refresh tokens: one refresh family written per call.
    IssueRefresh,
    /// RefreshToken, each worker presenting the latest token of its own family.
    Refresh,
    /// `envoy.service.auth.v3.Authorization/Check` as Envoy sends it, with the warm JWT as the
    /// request's bearer token (the server needs `ext_authz.enabled`).
    ExtAuthz,
    /// `ext-authz` by a temporary client with an `api_rate_limit_per_minute` no run reaches,
    /// on `GET /quota/42`: every Check passes through the API quota bookkeeping (and through a
    /// route quota too, when the server has a rule on `/quota` with `requests_per_minute`).
    /// Beside `ext-authz` in the same run, the cost of quotas.
    ExtAuthzQuota,
    /// IssueToken by a client with no secret, `private_key_jwt`: an ES256 assertion per call,
    /// each used once (signed before the phase).
    IssuePkjwt,
    /// IssueToken by a workload's own RS256 identity token from the bench's issuer
    /// (`--federation-issuer`, which tokend must trust), the same token every call.
    IssueFederated,
}

impl Rpc {
    /// Every RPC, in the order `--help` and error messages list them.
    pub const ALL: [Rpc; 11] = [
        Rpc::Health,
        Rpc::Introspect,
        Rpc::IntrospectOpaque,
        Rpc::IntrospectCold,
        Rpc::Issue,
        Rpc::IssueRefresh,
        Rpc::Refresh,
        Rpc::ExtAuthz,
        Rpc::ExtAuthzQuota,
        Rpc::IssuePkjwt,
        Rpc::IssueFederated,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Rpc::Health => "health",
            Rpc::Introspect => "introspect",
            Rpc::IntrospectOpaque => "introspect-opaque",
            Rpc::IntrospectCold => "introspect-cold",
            Rpc::Issue => "issue",
            Rpc::IssueRefresh => "issue-refresh",
            Rpc::Refresh => "refresh",
            Rpc::ExtAuthz => "ext-authz",
            Rpc::ExtAuthzQuota => "ext-authz-quota",
            Rpc::IssuePkjwt => "issue-pkjwt",
            Rpc::IssueFederated => "issue-federated",
        }
    }
}

impl fmt::Display for Rpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Rpc {
    type Err = BenchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rpc::ALL
            .into_iter()
            .find(|rpc| rpc.name() == s.trim())
            .ok_or_else(|| {
                let known: Vec<&str> = Rpc::ALL.iter().map(|r| r.name()).collect();
                BenchError::Usage(format!(
                    "unknown rpc `{s}`; expected one of {}",
                    known.join(", ")
                ))
            })
    }
}

/// Client credentials of an admin client (scope `tokend.admin`).
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The admin client's id.
    pub client_id: String,
    /// Its secret; kept wrapped so it never reaches a log or `Debug` output.
    pub client_secret: SecretString,
}

/// Everything a bench run needs; `Default` gives the CLI's defaults.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// tokend's gRPC URL, e.g. `http://127.0.0.1:50051`.
    pub target: String,
    /// RPCs to measure, in order; `health` is always measured first whether listed or not.
    pub rpcs: Vec<Rpc>,
    /// Requests in flight: one closed-loop worker task each.
    pub concurrency: usize,
    /// Separate HTTP/2 connections the workers are spread over, round robin.
    pub connections: usize,
    /// Measured time per RPC, unless `requests` is set.
    pub duration: Duration,
    /// Stop each RPC after this many measured requests instead of after `duration`.
    pub requests: Option<u64>,
    /// Load applied before each measurement and not recorded.
    pub warmup: Duration,
    /// Pool size for `introspect-cold`, and of the assertions `issue-pkjwt` signs up front
    /// (`requests` wins when set).
    pub cold_tokens: usize,
    /// The workload issuer `issue-federated` plays (`http://127.0.0.1:<port>`): the bench
    /// serves its keys at `<issuer>/jwks`; tokend must list it in `[[federation.issuers]]` with
    /// that `jwks_uri` and `audiences = ["tokend-bench"]`.
    pub federation_issuer: Option<String>,
    /// Admin credentials, used to create (and delete) the temporary clients.
    pub admin: Option<Credentials>,
    /// A token to introspect (and to present to `ext-authz`) instead of one from a temporary
    /// client.
    pub token: Option<SecretString>,
    /// The bearer token (scope `tokend.introspect`) Introspect is called with.
    pub caller_token: Option<SecretString>,
    /// Leave the temporary clients in place at the end.
    pub keep_clients: bool,
    /// Wrong-secret IssueToken calls kept in flight during a second round of every RPC.
    pub background_bad_secrets: usize,
    /// Local address the wrong-secret calls are sent from (`None`: the default route's).
    pub bad_secrets_from: Option<std::net::IpAddr>,
    /// The wrong secrets name a client of their own rather than the measured JWT client.
    pub bad_secrets_for_neighbour: bool,
    /// PEM CA certificate trusted for an `https://` target.
    pub ca_cert: Option<String>,
    /// Give the temporary clients an allow-list and a rate limit (both always passed) and
    /// send Introspect a `client_address`, to measure what the policy checks cost.
    pub client_policy: bool,
    /// Print a progress line on stderr every second.
    pub progress: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            target: "http://127.0.0.1:50051".into(),
            rpcs: vec![Rpc::Health, Rpc::Introspect],
            concurrency: 64,
            connections: 2,
            duration: Duration::from_secs(10),
            requests: None,
            warmup: Duration::from_secs(2),
            cold_tokens: 200_000,
            federation_issuer: None,
            admin: None,
            token: None,
            caller_token: None,
            keep_clients: false,
            background_bad_secrets: 0,
            bad_secrets_from: None,
            bad_secrets_for_neighbour: false,
            ca_cert: None,
            client_policy: false,
            progress: true,
        }
    }
}

impl BenchOptions {
    /// `health` first, then the listed RPCs once each, in the order given.
    fn plan(&self) -> Vec<Rpc> {
        let mut plan = vec![Rpc::Health];
        for rpc in &self.rpcs {
            if !plan.contains(rpc) {
                plan.push(*rpc);
            }
        }
        plan
    }

    /// How long (or how many requests) each phase measures.
    fn limit(&self) -> Limit {
        match self.requests {
            Some(n) => Limit::Requests(n),
            None => Limit::Duration(self.duration),
        }
    }

    /// Size of the `introspect-cold` pool.
    fn cold_pool_size(&self) -> usize {
        self.requests.map_or(self.cold_tokens, |n| n as usize)
    }

    /// Rejects options that cannot work before anything connects, with a message naming the flag.
    fn validate(&self) -> Result<(), BenchError> {
        let usage = |msg: &str| Err(BenchError::Usage(msg.into()));
        if self.concurrency == 0 {
            return usage("--concurrency must be at least 1");
        }
        if self.connections == 0 {
            return usage("--connections must be at least 1");
        }
        if self.requests == Some(0) {
            return usage("--requests must be at least 1");
        }
        if self.requests.is_none() && self.duration.is_zero() {
            return usage("--duration must be greater than 0");
        }
        if self.cold_pool_size() == 0
            && (self.rpcs.contains(&Rpc::IntrospectCold) || self.rpcs.contains(&Rpc::IssuePkjwt))
        {
            return usage("--cold-tokens must be at least 1");
        }
        if self.rpcs.contains(&Rpc::IssueFederated) && self.federation_issuer.is_none() {
            return usage(
                "rpc `issue-federated` needs --federation-issuer http://127.0.0.1:<port>, an \
                 issuer tokend trusts with jwks_uri <issuer>/jwks and audiences [\"tokend-bench\"]",
            );
        }
        setup::check_credentials(self)
    }
}

/// What can go wrong, worded for the person running the bench.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Options that cannot work together; the message names the flag.
    #[error("{0}")]
    Usage(String),
    /// The target does not accept connections.
    #[error("cannot reach tokend at {target}: {reason}")]
    Unreachable { target: String, reason: String },
    /// Ctrl-C (or the caller's stop signal) ended the run.
    #[error("interrupted")]
    Interrupted,
    /// Anything else: a failed setup call, a token that does not verify.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Runs the bench to completion and returns the report.
pub async fn run(options: BenchOptions) -> anyhow::Result<BenchReport> {
    run_until(options, std::future::pending::<()>()).await
}

/// Runs the bench until done or until `stop` completes (the CLI passes Ctrl-C). Temporary
/// clients are deleted either way, unless `keep_clients`.
pub async fn run_until(
    options: BenchOptions,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<BenchReport> {
    options.validate()?;
    let channels = setup::connect_from(
        &options.target,
        options.connections,
        None,
        options.ca_cert.as_deref(),
    )
    .await?;
    let mut fixtures = Fixtures::new(channels, &options);
    let result = tokio::select! {
        report = measure(&options, &mut fixtures) => report,
        () = stop => Err(BenchError::Interrupted.into()),
    };
    let cleanup = fixtures.cleanup(options.keep_clients).await;
    let report = result?;
    cleanup?;
    Ok(report)
}

/// Sets up, measures every phase in order, then the bad-secret round.
async fn measure(options: &BenchOptions, fixtures: &mut Fixtures) -> anyhow::Result<BenchReport> {
    let plan = options.plan();
    fixtures.prepare(&plan, options).await?;
    let verify_baseline = match fixtures.jwt_sample() {
        Some(token) => Some(verify::baseline(fixtures.channel(), token).await?),
        None => None,
    };
    let mut results = Vec::new();
    for &rpc in &plan {
        results.push(phase(options, fixtures, rpc, None).await?);
    }
    if options.background_bad_secrets > 0 {
        let background = load::Background::start(fixtures, options).await?;
        for &rpc in plan.iter().filter(|rpc| **rpc != Rpc::Health) {
            results.push(phase(options, fixtures, rpc, Some(&background)).await?);
        }
    }
    Ok(BenchReport::new(options, results, verify_baseline))
}

/// One measured phase of `rpc`, with background wrong secrets when given.
async fn phase(
    options: &BenchOptions,
    fixtures: &Fixtures,
    rpc: Rpc,
    background: Option<&load::Background>,
) -> anyhow::Result<RpcReport> {
    let calls = calls::prepare(rpc, fixtures, options).await?;
    let name = match background {
        Some(_) => format!("{rpc}+bad-secrets"),
        None => rpc.to_string(),
    };
    let spec = PhaseSpec {
        name,
        warmup: options.warmup,
        limit: options.limit(),
        progress: options.progress,
    };
    Ok(load::run_phase(&spec, calls, background).await)
}
