//! The command line: `serve` (the default), `migrate`, `client create|list` for bootstrap
//! and operations, and `kek rotate`. Client and KEK commands write straight to the configured
//! database with operator rights, which is how the first admin client comes to exist. `bench`
//! is a load generator that talks to any deployment over gRPC only; it needs no local config
//! or database.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;

use crate::bench::{self, BenchError, BenchOptions, Credentials, Rpc};
use crate::config::{Config, EXIT_CONFIG};
use crate::domain::{Caller, Clock, KekNotConfigured, SystemClock, TenantId, Tokend};
use crate::server::{self, Application};

/// tokend: tokens and introspection for machine-to-machine auth, over gRPC.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// TOML config file; `TOKEND__SECTION__KEY` environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// Refuses arguments that are text but name nothing, before any config or database is
    /// touched: an empty or malformed `--tenant` (an unset shell variable gives `--tenant ""`,
    /// which must not quietly mean the `system` tenant or every tenant). `main` prints the
    /// one line and exits with code 64.
    pub fn check(&self) -> Result<(), String> {
        let tenant = match &self.command {
            Some(Command::Client(ClientCommand::Create(args))) => Some(args.tenant.as_str()),
            Some(Command::Client(ClientCommand::List { tenant })) => tenant.as_deref(),
            _ => None,
        };
        match tenant {
            Some("") => Err(
                "--tenant is empty (an unset shell variable?): name the tenant, `system` for \
                 tokend's own admins"
                    .into(),
            ),
            Some(raw) => TenantId::parse("--tenant", raw)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server (the default when no command is given).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage clients directly in the database (bootstrap, break-glass).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage the key-encryption key (KEK) of the stored keys.
    #[command(subcommand)]
    Kek(KekCommand),
    /// Print a shell completion script: `tokend completions bash > /etc/bash_completion.d/tokend`
    /// (also zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Administer a running tokend over gRPC: clients, with the admin's own credentials.
    Admin(Box<crate::admin::AdminArgs>),
    /// Measure a running tokend: throughput and latency per RPC, next to a health baseline.
    Bench(Box<BenchArgs>),
}

/// `tokend client ...` (parsed once per process: the size of a variant does not matter)
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum ClientCommand {
    /// Register a client and print its id and secret as JSON (the secret is shown only once).
    Create(Box<CreateArgs>),
    /// Print clients as JSON lines.
    List {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// `tokend kek ...`
#[derive(Debug, Subcommand)]
pub enum KekCommand {
    /// Re-encrypt every stored key under the current (first) KEK of keys.kek, in one
    /// transaction, and print a JSON summary; afterwards the other KEKs can be removed from the
    /// configuration. Running it again changes nothing.
    Rotate,
}

/// `tokend client create`: the client fields as flags, the same as `tokend admin clients
/// create`'s.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Tenant owning the client (`system` for tokend's own admins).
    #[arg(long)]
    pub tenant: String,
    #[command(flatten)]
    pub flags: crate::admin::ClientFlags,
}

/// `tokend bench`
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// tokend's gRPC URL.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:50051")]
    pub target: String,
    /// RPCs to measure, comma-separated: health, introspect, introspect-opaque,
    /// introspect-cold, issue, issue-refresh, refresh, ext-authz (Envoy's Check; the server
    /// needs ext_authz.enabled), ext-authz-quota (the same by a client with an API quota, on
    /// /quota/42), issue-pkjwt, issue-federated. `health` is always measured first.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "health,introspect"
    )]
    pub rpc: Vec<Rpc>,
    /// Requests in flight.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub concurrency: usize,
    /// HTTP/2 connections the requests are spread over.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub connections: usize,
    /// Measured seconds per RPC.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    pub duration: Duration,
    /// Stop each RPC after N measured requests instead of after --duration.
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    pub requests: Option<u64>,
    /// Seconds of unrecorded load before each measurement.
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = seconds)]
    pub warmup: Duration,
    /// Distinct JWTs issued up front for introspect-cold (--requests wins when given).
    #[arg(long, value_name = "N", default_value_t = 200_000)]
    pub cold_tokens: usize,
    /// For issue-federated: the workload issuer the bench plays, serving its keys at
    /// <URL>/jwks; tokend must trust it ([[federation.issuers]] with that jwks_uri and
    /// audiences = ["tokend-bench"]).
    #[arg(long, value_name = "URL")]
    pub federation_issuer: Option<String>,
    /// Admin client (scope tokend.admin) that creates the temporary bench clients.
    #[arg(long, env = "TOKEND_BENCH_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The admin client's secret.
    #[arg(long, env = "TOKEND_BENCH_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// Introspect this token (for `introspect`; presented by `ext-authz`) instead of one from a
    /// temporary client.
    #[arg(long)]
    pub token: Option<String>,
    /// Bearer token with scope tokend.introspect to call Introspect with.
    #[arg(long)]
    pub caller_token: Option<String>,
    /// Do not delete the temporary clients at the end.
    #[arg(long)]
    pub keep_clients: bool,
    /// Measure every RPC again with N wrong-secret IssueToken calls in flight beside it.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub background_bad_secrets: usize,
    /// Local address the wrong-secret calls come from (e.g. 127.0.0.2 against a tokend on
    /// 127.0.0.1), so the lockout tells the attacker from the measured client as it would on a
    /// network; default: the same as the measured calls.
    #[arg(long, value_name = "ADDR")]
    pub bad_secrets_from: Option<std::net::IpAddr>,
    /// The wrong secrets are for a client of their own (a neighbour whose secret went stale),
    /// not the measured client: with the same address as the measured calls, this is the mesh
    /// case, one address for every caller.
    #[arg(long)]
    pub bad_secrets_for_neighbour: bool,
    /// PEM CA certificate to trust for an `https://` target (a tokend with `server.tls`).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Temporary clients get an allow-list and a rate limit that every call passes, and
    /// Introspect names a client_address: measures what the policy checks cost.
    #[arg(long)]
    pub client_policy: bool,
    /// Print one JSON document on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{text}` is not a number of seconds"))
}

impl BenchArgs {
    /// The library's options; a client id without a secret (or the reverse) is refused.
    pub fn into_options(self) -> Result<BenchOptions, BenchError> {
        let admin = match (self.client_id, self.client_secret) {
            (Some(client_id), Some(secret)) => Some(Credentials {
                client_id,
                client_secret: SecretString::from(secret),
            }),
            (None, None) => None,
            _ => {
                let msg = "--client-id and --client-secret go together";
                return Err(BenchError::Usage(msg.into()));
            }
        };
        Ok(BenchOptions {
            target: self.target,
            rpcs: self.rpc,
            concurrency: self.concurrency,
            connections: self.connections,
            duration: self.duration,
            requests: self.requests,
            warmup: self.warmup,
            cold_tokens: self.cold_tokens,
            federation_issuer: self.federation_issuer,
            admin,
            token: self.token.map(SecretString::from),
            caller_token: self.caller_token.map(SecretString::from),
            keep_clients: self.keep_clients,
            background_bad_secrets: self.background_bad_secrets,
            bad_secrets_from: self.bad_secrets_from,
            bad_secrets_for_neighbour: self.bad_secrets_for_neighbour,
            ca_cert: self
                .ca_cert
                .map(|path| {
                    std::fs::read_to_string(&path).map_err(|e| {
                        BenchError::Usage(format!("--ca-cert {}: {e}", path.display()))
                    })
                })
                .transpose()?,
            client_policy: self.client_policy,
            progress: true,
        })
    }
}

/// `tokend bench` from `main`, on its own runtime, before any config is loaded: the bench is a
/// client of some deployment, not this machine's server. Returns the exit code.
pub fn bench_main(args: BenchArgs) -> i32 {
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run_bench(args)));
    match result {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("tokend bench: {err:#}");
            1
        }
    }
}

/// Runs the bench until done or Ctrl-C, then prints the table or JSON on stdout.
pub async fn run_bench(args: BenchArgs) -> anyhow::Result<()> {
    let json = args.json;
    let options = args.into_options()?;
    let interrupted = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let report = bench::run_until(options, interrupted).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", bench::render_table(&report));
    }
    Ok(())
}

/// Runs the parsed command with the checked config.
pub async fn run(command: Command, mut config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let app = Application::from_config(config, Arc::new(SystemClock)).await?;
            app.run_until_stopped(server::shutdown_signal()).await
        }
        Command::Migrate => {
            config.database.migrate_on_start = true;
            server::open_store(&config.database).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Client(cmd) => client(cmd, config).await,
        Command::Kek(KekCommand::Rotate) => kek_rotate(config).await,
        Command::Bench(args) => run_bench(*args).await,
        Command::Completions { shell } => {
            print_completions(shell);
            Ok(())
        }
        Command::Admin(args) => crate::admin::run(*args)
            .await
            .map(|text| print!("{text}"))
            .map_err(anyhow::Error::from),
    }
}

/// The one line (without the `tokend: ` prefix) and the exit code for an error `run` returned.
/// A configuration lacking a KEK the stored keys need is a configuration error (exit code 64),
/// and its message alone says what to do; anything else is the whole chain and exit code 1.
pub fn failure(err: &anyhow::Error) -> (String, i32) {
    match err
        .chain()
        .find_map(|e| e.downcast_ref::<KekNotConfigured>())
    {
        Some(missing) => (missing.to_string(), EXIT_CONFIG),
        None => (format!("{err:#}"), 1),
    }
}

async fn kek_rotate(config: Config) -> anyhow::Result<()> {
    let store = server::open_store(&config.database).await?;
    let keks = config.keys.keks.load()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let done = crate::domain::rotate_kek(store.as_ref(), &keks, &clock).await?;
    let removable: Vec<&str> = keks.ids().into_iter().skip(1).collect();
    let out = serde_json::json!({
        "kek_id": done.kek_id,
        "reencrypted": done.signing_keys + done.secrets,
        "signing_keys": done.signing_keys,
        "secrets": done.secrets,
        "already_current": done.already_current,
        "from_kek_ids": done.from_kek_ids,
        "removable_kek_ids": removable,
    });
    println!("{out:#}");
    Ok(())
}

async fn client(cmd: ClientCommand, config: Config) -> anyhow::Result<()> {
    let domain = config.domain();
    let store = server::open_store(&config.database).await?;
    let kek = config.keys.keks.load()?;
    let tokend = Tokend::open(store, kek, domain, Arc::new(SystemClock)).await?;
    let operator = Caller::operator();
    match cmd {
        ClientCommand::Create(args) => {
            let (mut client, _) = args.flags.client()?;
            client.tenant = args.tenant;
            let input = crate::grpc::client_input(client)
                .map_err(|status| anyhow::anyhow!("{}", status.message()))?;
            let (client, secret) = tokend.clients.create(&operator, &input).await?;
            let out = serde_json::json!({
                "client_id": client.id.as_str(),
                "client_secret": secret.as_ref().map(|s| s.expose()),
                "tenant": client.tenant.as_str(),
                "name": client.spec.name,
                "scopes": client.spec.scopes.to_strings(),
            });
            println!("{out:#}");
        }
        ClientCommand::List { tenant } => {
            let mut token = String::new();
            loop {
                let page = tokend
                    .clients
                    .list(&operator, tenant.as_deref().unwrap_or(""), 1000, &token)
                    .await?;
                for c in &page.clients {
                    let line = serde_json::json!({
                        "client_id": c.id.as_str(),
                        "tenant": c.tenant.as_str(),
                        "name": c.spec.name,
                        "active": c.spec.active,
                        "scopes": c.spec.scopes.to_strings(),
                    });
                    println!("{line}");
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
        }
    }
    Ok(())
}

/// Writes the completion script of `shell` for every command and flag to stdout.
pub fn print_completions(shell: clap_complete::Shell) {
    use clap::CommandFactory as _;
    clap_complete::generate(shell, &mut Cli::command(), "tokend", &mut std::io::stdout());
}
