//! `tokend admin clients ...`

use clap::Subcommand;
use serde_json::{Value, json};

use super::connect::Session;
use super::flags::ClientFlags;
use super::output::{AdminError, Output, json, table};
use crate::proto::client_service_client::ClientServiceClient;
use crate::proto::{
    AccessTokenFormat, Client, CreateClientRequest, DeleteClientRequest, GetClientRequest,
    RevokeClientTokensRequest, RotateClientSecretRequest, UpdateClientRequest,
};

/// `tokend admin clients` (a client's id is `id` here: `client_id` is the admin's own,
/// `--client-id`)
#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Register a client. Its secret, when it has one, is shown once: on stdout, or written to
    /// --secret-file (mode 0600).
    ///
    /// Example: tokend admin clients create --tenant acme --name billing --scopes read:invoices
    ///   --rate-limit 5000 --allowed-cidrs 10.0.1.5/32,10.0.1.6/32 --access-token-ttl 15m
    Create {
        /// The tenant (default: the admin's own).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        flags: Box<ClientFlags>,
        /// Write the secret to this new file (mode 0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        secret_file: Option<std::path::PathBuf>,
    },
    /// Change the fields given, and only those (the field mask is built from the flags).
    ///
    /// Example: tokend admin clients update 0190a8e2-... --rate-limit 1000 --audiences ''
    Update {
        #[arg(value_name = "CLIENT_ID")]
        id: String,
        #[command(flatten)]
        flags: Box<ClientFlags>,
    },
    /// List clients (every page), optionally of one tenant.
    ///
    /// Example: tokend admin clients list --tenant acme --output json
    List {
        /// Only this tenant (system admins see every tenant; others only their own).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Show one client.
    ///
    /// Example: tokend admin clients get 0190a8e2-3c4d-7e5f-8a9b-0c1d2e3f4a5b
    Get {
        #[arg(value_name = "CLIENT_ID")]
        id: String,
    },
    /// Disable a client: its tokens stop introspecting active at once.
    ///
    /// Example: tokend admin clients disable 0190a8e2-3c4d-7e5f-8a9b-0c1d2e3f4a5b
    Disable {
        #[arg(value_name = "CLIENT_ID")]
        id: String,
    },
    /// Enable a disabled client (its old tokens stay revoked).
    ///
    /// Example: tokend admin clients enable 0190a8e2-3c4d-7e5f-8a9b-0c1d2e3f4a5b
    Enable {
        #[arg(value_name = "CLIENT_ID")]
        id: String,
    },
    /// Issue a new secret, printed once; the old ones keep working for --grace-period.
    ///
    /// Example: tokend admin clients rotate-secret 0190a8e2-... --grace-period 24h
    RotateSecret {
        #[arg(value_name = "CLIENT_ID")]
        id: String,
        /// How long the current secrets keep working: `0` (revoke at once), `90s`, `15m`,
        /// `24h`, `7d` (at most 30 days).
        #[arg(long, default_value = "0", value_parser = parse_duration)]
        grace_period: std::time::Duration,
        /// Write the new secret to this file (mode 0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        secret_file: Option<std::path::PathBuf>,
    },
    /// Revoke every token the client holds, at once, on every replica.
    ///
    /// Example: tokend admin clients revoke-tokens 0190a8e2-3c4d-7e5f-8a9b-0c1d2e3f4a5b
    RevokeTokens {
        #[arg(value_name = "CLIENT_ID")]
        id: String,
    },
    /// Delete a client; its tokens stop introspecting active at once.
    ///
    /// Example: tokend admin clients delete 0190a8e2-3c4d-7e5f-8a9b-0c1d2e3f4a5b
    Delete {
        #[arg(value_name = "CLIENT_ID")]
        id: String,
    },
}

/// `90`, `90s`, `15m`, `24h`, `7d`.
pub fn parse_duration(raw: &str) -> Result<std::time::Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{raw:?}: give a number with s, m, h or d, e.g. 15m or 7d"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{raw:?}: the unit must be s, m, h or d")),
    };
    number
        .checked_mul(seconds)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("{raw:?} is too long"))
}

/// A client as `--output json` shows it: the API's field names (snake case), stable.
pub(super) fn client_json(c: &Client) -> Value {
    let secs = |d: &Option<prost_types::Duration>| d.as_ref().map_or(0, |d| d.seconds);
    let time = |t: &Option<prost_types::Timestamp>| {
        t.as_ref()
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.seconds).ok())
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
    };
    json!({
        "client_id": c.client_id,
        "tenant": c.tenant,
        "name": c.name,
        "description": c.description,
        "active": c.active.unwrap_or(true),
        "scopes": c.scopes,
        "audiences": c.audiences,
        "roles": c.roles,
        "access_token_ttl_secs": secs(&c.access_token_ttl),
        "refresh_token_ttl_secs": secs(&c.refresh_token_ttl),
        "allowed_cidrs": c.allowed_cidrs,
        "rate_limit_per_minute": c.rate_limit_per_minute,
        "refresh_rate_limit_per_minute": c.refresh_rate_limit_per_minute,
        "api_rate_limit_per_minute": c.api_rate_limit_per_minute,
        "auth_methods": c.auth_methods,
        "access_token_format": match AccessTokenFormat::try_from(c.access_token_format) {
            Ok(AccessTokenFormat::Opaque) => "opaque",
            _ => "jwt",
        },
        "exchange_audiences": c.exchange_audiences,
        "jwks": c.jwks,
        "jwks_uri": c.jwks_uri,
        "federated_credentials": c.federated_credentials.iter()
            .map(|f| json!({"issuer": f.issuer, "subject": f.subject}))
            .collect::<Vec<_>>(),
        "tls_client_auth_subject_dn": c.tls_client_auth_subject_dn,
        "tls_client_auth_san_dns": c.tls_client_auth_san_dns,
        "tls_client_auth_san_uri": c.tls_client_auth_san_uri,
        "tls_client_auth_san_ip": c.tls_client_auth_san_ip,
        "tls_client_auth_san_email": c.tls_client_auth_san_email,
        "tls_client_certificate_bound_access_tokens": c.tls_client_certificate_bound_access_tokens,
        "metadata": c.metadata,
        "create_time": time(&c.create_time),
        "update_time": time(&c.update_time),
        "last_used_time": time(&c.last_used_time),
    })
}

fn client_rows(clients: &[Client]) -> String {
    let rows: Vec<Vec<String>> = clients
        .iter()
        .map(|c| {
            vec![
                c.client_id.clone(),
                c.tenant.clone(),
                c.name.clone(),
                if c.active.unwrap_or(true) {
                    "active"
                } else {
                    "disabled"
                }
                .into(),
                c.scopes.join(" "),
                c.auth_methods.join(","),
            ]
        })
        .collect();
    table(
        &[
            "client_id",
            "tenant",
            "name",
            "state",
            "scopes",
            "auth_methods",
        ],
        &rows,
    )
}

fn one(output: Output, client: &Client) -> String {
    match output {
        Output::Json => json(&client_json(client)),
        Output::Table => client_rows(std::slice::from_ref(client)),
    }
}

fn missing(what: &str) -> AdminError {
    AdminError::other(format!("{what}: the server answered no client"))
}

/// Runs one `clients` subcommand; returns what to print.
pub async fn run(
    session: &Session,
    command: ClientsCommand,
    output: Output,
) -> Result<String, AdminError> {
    let mut api = ClientServiceClient::new(session.channel.clone());
    match command {
        ClientsCommand::Create {
            tenant,
            flags,
            secret_file,
        } => {
            let (mut client, _) = flags.client()?;
            client.tenant = tenant.unwrap_or_default();
            let created = api
                .create_client(session.request(CreateClientRequest {
                    client: Some(client),
                }))
                .await
                .map_err(|s| AdminError::status("creating the client", &s))?
                .into_inner();
            let client = created.client.ok_or_else(|| missing("create"))?;
            let secret = created.client_secret;
            let shown = match (&secret_file, secret.is_empty()) {
                (_, true) => None,
                (Some(path), false) => {
                    write_secret(path, &secret)?;
                    None
                }
                (None, false) => Some(secret),
            };
            Ok(match output {
                Output::Json => {
                    let mut out = client_json(&client);
                    out["client_secret"] = shown.map_or(Value::Null, Value::String);
                    json(&out)
                }
                Output::Table => {
                    let secret = match (shown, &secret_file) {
                        (Some(secret), _) => secret,
                        (None, Some(path)) => format!("written to {}", path.display()),
                        (None, None) => "(none: no secret method)".into(),
                    };
                    table(
                        &["client_id", "tenant", "name", "client_secret"],
                        &[vec![client.client_id, client.tenant, client.name, secret]],
                    )
                }
            })
        }
        ClientsCommand::Update { id, flags } => {
            let (mut client, paths) = flags.client()?;
            if paths.is_empty() {
                return Err(AdminError::usage(
                    "nothing to change: give the fields to update as flags (see --help)",
                ));
            }
            client.client_id = id;
            let request = UpdateClientRequest {
                client: Some(client),
                update_mask: Some(prost_types::FieldMask {
                    paths: paths.into_iter().map(str::to_owned).collect(),
                }),
            };
            let client = api
                .update_client(session.request(request))
                .await
                .map_err(|s| AdminError::status("updating the client", &s))?
                .into_inner()
                .client
                .ok_or_else(|| missing("update"))?;
            Ok(one(output, &client))
        }
        ClientsCommand::List { tenant } => {
            let clients = super::apply::list_all(session, tenant).await?;
            Ok(match output {
                Output::Json => json(&json!({
                    "clients": clients.iter().map(client_json).collect::<Vec<_>>()
                })),
                Output::Table => client_rows(&clients),
            })
        }
        ClientsCommand::Get { id } => {
            let request = GetClientRequest { client_id: id };
            let client = api
                .get_client(session.request(request))
                .await
                .map_err(|s| AdminError::status("getting the client", &s))?
                .into_inner()
                .client
                .ok_or_else(|| missing("get"))?;
            Ok(one(output, &client))
        }
        ClientsCommand::Disable { id } => set_active(&mut api, session, id, false, output).await,
        ClientsCommand::Enable { id } => set_active(&mut api, session, id, true, output).await,
        ClientsCommand::RotateSecret {
            id,
            grace_period,
            secret_file,
        } => {
            let request = RotateClientSecretRequest {
                client_id: id,
                grace_period: Some(prost_types::Duration {
                    seconds: i64::try_from(grace_period.as_secs()).unwrap_or(i64::MAX),
                    nanos: 0,
                }),
            };
            let rotated = api
                .rotate_client_secret(session.request(request))
                .await
                .map_err(|s| AdminError::status("rotating the secret", &s))?
                .into_inner();
            let secret = match &secret_file {
                Some(path) => {
                    write_secret(path, &rotated.client_secret)?;
                    Value::Null
                }
                None => Value::String(rotated.client_secret.clone()),
            };
            let expires = rotated
                .previous_secrets_expire_time
                .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.seconds).ok())
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                });
            Ok(match output {
                Output::Json => json(&json!({
                    "client_secret": secret,
                    "secret_file": secret_file.map(|p| p.display().to_string()),
                    "previous_secrets_expire_time": expires,
                })),
                Output::Table => {
                    let shown = match &secret_file {
                        Some(path) => format!("written to {}", path.display()),
                        None => rotated.client_secret,
                    };
                    table(
                        &["client_secret", "previous_secrets_expire"],
                        &[vec![shown, expires.unwrap_or_default()]],
                    )
                }
            })
        }
        ClientsCommand::RevokeTokens { id } => {
            let request = RevokeClientTokensRequest { client_id: id };
            let client = api
                .revoke_client_tokens(session.request(request))
                .await
                .map_err(|s| AdminError::status("revoking the client's tokens", &s))?
                .into_inner()
                .client
                .ok_or_else(|| missing("revoke-tokens"))?;
            Ok(one(output, &client))
        }
        ClientsCommand::Delete { id } => {
            let client_id = id;
            let request = DeleteClientRequest {
                client_id: client_id.clone(),
            };
            api.delete_client(session.request(request))
                .await
                .map_err(|s| AdminError::status("deleting the client", &s))?;
            Ok(match output {
                Output::Json => json(&json!({"deleted": client_id})),
                Output::Table => format!("deleted {client_id}\n"),
            })
        }
    }
}

/// UpdateClient of `active` alone (the mask built for the user).
async fn set_active(
    api: &mut ClientServiceClient<tonic::transport::Channel>,
    session: &Session,
    client_id: String,
    active: bool,
    output: Output,
) -> Result<String, AdminError> {
    let request = UpdateClientRequest {
        client: Some(Client {
            client_id,
            active: Some(active),
            ..Client::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["active".into()],
        }),
    };
    let what = if active {
        "enabling the client"
    } else {
        "disabling the client"
    };
    let client = api
        .update_client(session.request(request))
        .await
        .map_err(|s| AdminError::status(what, &s))?
        .into_inner()
        .client
        .ok_or_else(|| missing(what))?;
    Ok(one(output, &client))
}

/// Writes a secret to a new file only its owner can read.
fn write_secret(path: &std::path::Path, secret: &str) -> Result<(), AdminError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| AdminError::usage(format!("--secret-file {}: {e}", path.display())))?;
    writeln!(file, "{secret}")
        .map_err(|e| AdminError::other(format!("--secret-file {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        let secs = |raw| parse_duration(raw).map(|d| d.as_secs());
        assert_eq!(secs("0"), Ok(0));
        assert_eq!(secs("90s"), Ok(90));
        assert_eq!(secs("15m"), Ok(900));
        assert_eq!(secs("24h"), Ok(86_400));
        assert_eq!(secs("7d"), Ok(604_800));
        assert!(parse_duration("7w").unwrap_err().contains("unit"));
        assert!(parse_duration("soon").unwrap_err().contains("15m"));
    }
}
