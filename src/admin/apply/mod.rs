//! `tokend admin apply -f FILE|DIR` and `tokend admin export`: clients declared in files.
//!
//! - `file`    — the file format, read and checked in full before anything is sent;
//! - `plan`    — matching entries to registered clients, the field-by-field comparison, prune;
//! - `secrets` — where the secrets of new clients go (files 0600, or Kubernetes Secrets).

mod file;
mod plan;
mod secrets;

use std::path::PathBuf;

use serde_json::json;

use super::connect::Session;
use super::output::{AdminError, Output, json};
use crate::proto::client_service_client::ClientServiceClient;
use crate::proto::{
    AccessTokenFormat, Client, CreateClientRequest, DeleteClientRequest, ListClientsRequest,
    UpdateClientRequest,
};
pub use file::Entry;
use file::{ClientsDocument, FileClient, FileFederated, Jwks, lifetime};
use plan::{Change, Plan};
pub use secrets::SecretsFormat;
use secrets::SecretsOut;

/// `tokend admin apply`
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// A client file (YAML or JSON), or a folder of them (`.yaml`, `.yml`, `.json`, read
    /// recursively); repeatable.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR",
        required = true
    )]
    pub files: Vec<PathBuf>,
    /// Print the plan as a diff and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also delete the clients apply created (metadata `tokend.managed-by: apply`) that no
    /// file names any more.
    #[arg(long)]
    pub prune: bool,
    /// Write the secret of each new client here, one file each (mode 0600).
    #[arg(long, value_name = "DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// `files` (the secret alone) or `k8s` (a Kubernetes Secret manifest; on stdout without
    /// --secrets-dir, the plan then on stderr).
    #[arg(long, value_enum, default_value_t = SecretsFormat::Files)]
    pub secrets_format: SecretsFormat,
    /// The namespace of the Secret manifests.
    #[arg(long, value_name = "NAMESPACE")]
    pub secrets_namespace: Option<String>,
}

/// The entries of `-f`'s files, read and checked (before any connection).
pub fn read(args: &ApplyArgs) -> Result<Vec<Entry>, AdminError> {
    file::read(&file::files(&args.files)?)
}

/// Every client the admin can see (every page), optionally of one tenant.
pub(super) async fn list_all(
    session: &Session,
    tenant: Option<String>,
) -> Result<Vec<Client>, AdminError> {
    let mut api = ClientServiceClient::new(session.channel.clone());
    let mut clients = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListClientsRequest {
            page_size: 100,
            page_token: page_token.clone(),
            tenant: tenant.clone().unwrap_or_default(),
        };
        let page = api
            .list_clients(session.request(request))
            .await
            .map_err(|s| AdminError::status("listing clients", &s))?
            .into_inner();
        clients.extend(page.clients);
        if page.next_page_token.is_empty() {
            return Ok(clients);
        }
        page_token = page.next_page_token;
    }
}

fn uses_secret(c: &Client) -> bool {
    c.auth_methods
        .iter()
        .any(|m| m.starts_with("client_secret_"))
}

/// Reads the files, plans against the server, and (unless `--dry-run`) makes the changes.
/// Returns what goes to stdout.
pub async fn apply(
    session: &Session,
    entries: Vec<Entry>,
    args: ApplyArgs,
    output: Output,
) -> Result<String, AdminError> {
    let current = list_all(session, None).await?;
    let plan = plan::plan(entries, &current, args.prune)?;
    let out = SecretsOut {
        format: args.secrets_format,
        dir: args.secrets_dir,
        namespace: args.secrets_namespace,
    };
    let new_with_secret: Vec<(String, String)> = plan
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Create { entry, client, .. } if uses_secret(client) => {
                Some((entry.tenant.clone(), entry.name.clone()))
            }
            _ => None,
        })
        .collect();
    if !args.dry_run {
        out.check(&new_with_secret)?;
    }
    let report = match output {
        Output::Table => plan::render(&plan),
        Output::Json => String::new(),
    };
    if args.dry_run {
        return Ok(match output {
            Output::Table => format!("{report}dry run: nothing changed\n"),
            Output::Json => json(&summary(&plan, true)),
        });
    }
    // With the manifests on stdout, everything else goes to stderr.
    let mut stdout = String::new();
    let mut say = |text: &str| {
        if out.to_stdout() {
            eprint!("{text}");
        } else {
            stdout.push_str(text);
        }
    };
    say(&report);
    let manifests = execute(session, &plan, &out).await?;
    let done = match output {
        Output::Table => {
            let [c, u, d, s] = plan.counts();
            format!("applied: {c} created, {u} updated, {d} deleted, {s} unchanged\n")
        }
        Output::Json => json(&summary(&plan, false)),
    };
    say(&done);
    Ok(format!("{manifests}{stdout}"))
}

/// Makes the planned changes in order; returns the Secret manifests bound for stdout. A
/// refusal stops the run, saying what was already done.
async fn execute(session: &Session, plan: &Plan, out: &SecretsOut) -> Result<String, AdminError> {
    let mut api = ClientServiceClient::new(session.channel.clone());
    let mut manifests = String::new();
    for (done, change) in plan.changes.iter().enumerate() {
        let stopped = |what: String, s: &tonic::Status| {
            AdminError::status(&what, s).map_message(|m| {
                format!(
                    "{m} (stopped after {done} of {} changes)",
                    plan.changes.len()
                )
            })
        };
        match change {
            Change::Create { entry, client, .. } => {
                let mut client = client.clone();
                client.tenant = entry.tenant.clone();
                let created = api
                    .create_client(session.request(CreateClientRequest {
                        client: Some(client),
                    }))
                    .await
                    .map_err(|s| stopped(format!("{}: creating", entry.place), &s))?
                    .into_inner();
                let id = created.client.map(|c| c.client_id).unwrap_or_default();
                if !created.client_secret.is_empty()
                    && let Some(text) =
                        out.write(&entry.tenant, &entry.name, &id, &created.client_secret)?
                {
                    manifests.push_str(&text);
                }
            }
            Change::Update {
                entry,
                client,
                diffs,
                ..
            } => {
                let request = UpdateClientRequest {
                    client: Some(client.clone()),
                    update_mask: Some(prost_types::FieldMask {
                        paths: diffs.iter().map(|(path, ..)| path.clone()).collect(),
                    }),
                };
                api.update_client(session.request(request))
                    .await
                    .map_err(|s| stopped(format!("{}: updating", entry.place), &s))?;
            }
            Change::Delete { client } => {
                let request = DeleteClientRequest {
                    client_id: client.client_id.clone(),
                };
                api.delete_client(session.request(request))
                    .await
                    .map_err(|s| {
                        stopped(format!("{}/{}: deleting", client.tenant, client.name), &s)
                    })?;
            }
        }
    }
    Ok(manifests)
}

/// The plan for `--output json`: stable field names.
fn summary(plan: &Plan, dry_run: bool) -> serde_json::Value {
    let changes: Vec<serde_json::Value> = plan
        .changes
        .iter()
        .map(|change| match change {
            Change::Create { entry, fields, .. } => json!({
                "action": "create", "tenant": entry.tenant, "name": entry.name,
                "fields": fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<serde_json::Map<_, _>>(),
            }),
            Change::Update { entry, client_id, diffs, .. } => json!({
                "action": "update", "tenant": entry.tenant, "name": entry.name,
                "client_id": client_id,
                "fields": diffs.iter().map(|(k, old, new)| (k.clone(), json!({"from": old, "to": new}))).collect::<serde_json::Map<_, _>>(),
            }),
            Change::Delete { client } => json!({
                "action": "delete", "tenant": client.tenant, "name": client.name,
                "client_id": client.client_id,
            }),
        })
        .collect();
    let [created, updated, deleted, unchanged] = plan.counts();
    json!({
        "dry_run": dry_run,
        "changes": changes,
        "unchanged": plan.unchanged.iter().map(|(e, id)| json!({"tenant": e.tenant, "name": e.name, "client_id": id})).collect::<Vec<_>>(),
        "counts": {"create": created, "update": updated, "delete": deleted, "unchanged": unchanged},
    })
}

/// `tokend admin export`: today's clients as a client file, which `apply` reads back as no
/// change (entries carry their client_id; fields at a new client's default are left out).
pub async fn export(session: &Session, tenant: Option<String>) -> Result<String, AdminError> {
    let clients = list_all(session, tenant).await?;
    let document = ClientsDocument {
        tenant: None,
        clients: clients.iter().map(file_client).collect(),
    };
    let yaml = serde_norway::to_string(&document)
        .map_err(|e| AdminError::other(format!("writing YAML: {e}")))?;
    Ok(format!(
        "# tokend clients, exported {}; `tokend admin apply -f` reads this file\n{yaml}",
        time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    ))
}

/// A registered client as a file entry, its defaults left out.
fn file_client(c: &Client) -> FileClient {
    let defaults = plan::normalize(&Client {
        name: "-".into(),
        ..Client::default()
    })
    .unwrap_or_default();
    let secs = |d: &Option<prost_types::Duration>| d.as_ref().map_or(0, |d| d.seconds);
    let ttl = |d: &Option<prost_types::Duration>, default: &Option<prost_types::Duration>| {
        (secs(d) != secs(default)).then(|| lifetime(secs(d)))
    };
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    FileClient {
        client_id: Some(c.client_id.clone()),
        tenant: Some(c.tenant.clone()),
        name: c.name.clone(),
        description: c.description.clone(),
        active: (c.active == Some(false)).then_some(false),
        scopes: c.scopes.clone(),
        audiences: c.audiences.clone(),
        roles: c.roles.clone(),
        access_token_ttl: ttl(&c.access_token_ttl, &defaults.access_token_ttl),
        refresh_token_ttl: ttl(&c.refresh_token_ttl, &defaults.refresh_token_ttl),
        allowed_cidrs: c.allowed_cidrs.clone(),
        rate_limit_per_minute: c.rate_limit_per_minute,
        refresh_rate_limit_per_minute: c.refresh_rate_limit_per_minute,
        api_rate_limit_per_minute: c.api_rate_limit_per_minute,
        metadata: c.metadata.clone().into_iter().collect(),
        access_token_format: (c.access_token_format == i32::from(AccessTokenFormat::Opaque))
            .then(|| "opaque".to_owned()),
        exchange_audiences: c.exchange_audiences.clone(),
        auth_methods: if c.auth_methods == defaults.auth_methods {
            Vec::new()
        } else {
            c.auth_methods.clone()
        },
        jwks: some(&c.jwks).map(|text| match serde_json::from_str(&text) {
            Ok(set) => Jwks::Set(set),
            Err(_) => Jwks::Text(text),
        }),
        jwks_uri: some(&c.jwks_uri),
        federated_credentials: c
            .federated_credentials
            .iter()
            .map(|f| FileFederated {
                issuer: f.issuer.clone(),
                subject: f.subject.clone(),
            })
            .collect(),
        tls_client_auth_subject_dn: some(&c.tls_client_auth_subject_dn),
        tls_client_auth_san_dns: some(&c.tls_client_auth_san_dns),
        tls_client_auth_san_uri: some(&c.tls_client_auth_san_uri),
        tls_client_auth_san_ip: some(&c.tls_client_auth_san_ip),
        tls_client_auth_san_email: some(&c.tls_client_auth_san_email),
        tls_client_certificate_bound_access_tokens: c.tls_client_certificate_bound_access_tokens,
    }
}
