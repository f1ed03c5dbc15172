//! The command line: `serve` (the default), `migrate`, and `client create|list` for bootstrap
//! and operations. Client commands write straight to the configured database with operator
//! rights, which is how the first admin client comes to exist.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::config::Settings;
use crate::domain::{Caller, ClientInput, SystemClock, Tokend};
use crate::startup::{self, Application};

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
}

/// `tokend client ...`
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client and print its id and secret as JSON (the secret is shown only once).
    Create(CreateArgs),
    /// Print clients as JSON lines.
    List {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// `tokend client create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Tenant owning the client (`system` for tokend's own admins).
    #[arg(long)]
    pub tenant: String,
    /// Human-readable name.
    #[arg(long)]
    pub name: String,
    /// Allowed scopes, comma-separated (e.g. `tokend.admin` or `read:*,write:orders`).
    #[arg(long, value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// Allowed audiences, comma-separated. None: tokens are for tokend itself.
    #[arg(long, value_delimiter = ',')]
    pub audiences: Vec<String>,
    /// Roles put in every token, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub roles: Vec<String>,
    /// Free-text description.
    #[arg(long, default_value = "")]
    pub description: String,
}

/// Runs the parsed command with validated settings.
pub async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let app = Application::build(settings).await?;
            app.run_until_stopped(startup::shutdown_signal()).await
        }
        Command::Migrate => {
            startup::open_store(&with_migrations(settings)).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Client(cmd) => client(cmd, settings).await,
    }
}

fn with_migrations(mut settings: Settings) -> Settings {
    settings.database.migrate_on_start = true;
    settings
}

async fn client(cmd: ClientCommand, settings: Settings) -> anyhow::Result<()> {
    let store = startup::open_store(&settings).await?;
    let kek = settings.load_kek()?;
    let tokend = Tokend::open(store, kek, settings.domain(), Arc::new(SystemClock)).await?;
    let operator = Caller::operator();
    match cmd {
        ClientCommand::Create(args) => {
            let input = ClientInput {
                tenant: args.tenant,
                name: args.name,
                description: args.description,
                scopes: args.scopes,
                audiences: args.audiences,
                roles: args.roles,
                ..ClientInput::default()
            };
            let (client, secret) = tokend.clients.create(&operator, &input).await?;
            let out = serde_json::json!({
                "client_id": client.id.as_str(),
                "client_secret": secret.expose(),
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
