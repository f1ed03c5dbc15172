//! `tokend admin`: the running service from a terminal. A plain gRPC client of the public admin
//! API, like `tokend bench`: it needs no config file and never touches a database, so it works
//! against any deployment its credentials are good for.
//!
//! - `connect` — where and as whom: `--server`, TLS and mTLS, the admin's client credentials
//!   (or a token), the token fetched once per run;
//! - `clients` — the `clients` subcommands; `flags`, the client fields as flags and the
//!   update mask built from the ones given;
//! - `apply`   — `apply -f` (clients declared in files: plan, diff, prune, secrets) and
//!   `export`;
//! - `ops`     — `keys`, `audit` (list and tail) and `usage`;
//! - `output`  — human tables, `--output json` with stable field names, and the one-line
//!   errors with their exit codes.

mod apply;
mod clients;
mod connect;
mod flags;
mod ops;
mod output;

use clap::{Args, Subcommand};

pub use connect::ConnectArgs;
pub use flags::ClientFlags;
pub use output::{AdminError, Output};

/// `tokend admin`
#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// `table` for people, `json` for scripts (stable field names, one document).
    #[arg(long, value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// What to administer.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Registered clients: create, update, list, show, disable, enable, rotate a secret,
    /// revoke tokens, delete.
    #[command(subcommand)]
    Clients(clients::ClientsCommand),
    /// Signing keys: list, rotate.
    #[command(subcommand)]
    Keys(ops::KeysCommand),
    /// The audit trail: list, or follow (tail).
    #[command(subcommand)]
    Audit(ops::AuditCommand),
    /// Create and update the clients declared in files (`--dry-run` shows the plan as a diff).
    ///
    /// Example: tokend admin apply -f clients/ --prune --secrets-format k8s | kubectl apply -f -
    Apply(apply::ApplyArgs),
    /// Today's clients as a client file for `apply`.
    ///
    /// Example: tokend admin export --tenant acme > clients.yaml
    Export {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// A client's usage per day, as a table and a small chart.
    ///
    /// Example: tokend admin usage 0190a8e2-... --days 7
    Usage {
        #[arg(value_name = "CLIENT_ID")]
        id: String,
        /// How many days back (0: today only).
        #[arg(long, default_value_t = 7)]
        days: i32,
    },
}

/// Runs `tokend admin ...` to completion on its own runtime; returns the exit code (0, or the
/// error's: usage 64, authentication 77, not found 69, unavailable 75, anything else 1).
pub fn main(args: AdminArgs) -> i32 {
    let result = tokio::runtime::Runtime::new()
        .map_err(|e| AdminError::other(format!("cannot start the async runtime: {e}")))
        .and_then(|runtime| runtime.block_on(run(args)));
    match result {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(err) => {
            eprintln!("tokend admin: {err}");
            err.exit_code()
        }
    }
}

/// Runs the command and returns what to print on stdout.
pub async fn run(args: AdminArgs) -> Result<String, AdminError> {
    // Client files are read and checked in full before connecting: a bad file changes nothing.
    let entries = match &args.command {
        AdminCommand::Apply(apply_args) => Some(apply::read(apply_args)?),
        _ => None,
    };
    let session = args.connect.open().await?;
    match args.command {
        AdminCommand::Clients(command) => clients::run(&session, command, args.output).await,
        AdminCommand::Keys(command) => ops::keys(&session, command, args.output).await,
        AdminCommand::Audit(command) => ops::audit(&session, command, args.output).await,
        AdminCommand::Apply(apply_args) => {
            let entries = entries.unwrap_or_default();
            apply::apply(&session, entries, apply_args, args.output).await
        }
        AdminCommand::Export { tenant } => apply::export(&session, tenant).await,
        AdminCommand::Usage { id, days } => ops::usage(&session, id, days, args.output).await,
    }
}
