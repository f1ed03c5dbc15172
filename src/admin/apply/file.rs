//! The client files of `tokend admin apply` and `export`: YAML (or JSON, which is YAML), each
//! document a `clients:` list with an optional file-wide `tenant:`, each entry a client in the
//! API's field names. Read and checked in full (shape, then every field with the server's own
//! rules) before anything is sent, so a bad file changes nothing and its error names the file,
//! the entry and the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::super::output::AdminError;
use crate::domain::ClientSpec;
use crate::proto::{AccessTokenFormat, Client, FederatedCredential};

/// One YAML document of a client file.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientsDocument {
    /// The tenant of the entries that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default)]
    pub clients: Vec<FileClient>,
}

/// A lifetime: seconds, or a number with a unit (`90s`, `15m`, `24h`, `7d`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Lifetime {
    Seconds(u64),
    Text(String),
}

/// A JWK Set: the JSON text, or the set itself written as YAML.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Jwks {
    Text(String),
    Set(serde_json::Value),
}

/// `90`, `15m`, `24h`, `7d`: the largest unit that divides it.
pub fn lifetime(secs: i64) -> Lifetime {
    let secs = u64::try_from(secs).unwrap_or(0);
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= size && secs % size == 0 {
            return Lifetime::Text(format!("{}{unit}", secs / size));
        }
    }
    Lifetime::Seconds(secs)
}

/// One client as a file declares it; a field left out takes the value a new client gets
/// (empty lists, no limits, JWT access tokens for 15 minutes, the secret methods), except
/// `active`, which apply leaves as it is unless given (a client disabled during an incident
/// stays disabled until the file says `active: true`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileClient {
    /// Matches an existing client by id instead of by tenant and name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_ttl: Option<Lifetime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_ttl: Option<Lifetime>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_cidrs: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rate_limit_per_minute: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refresh_rate_limit_per_minute: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub api_rate_limit_per_minute: u32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// `jwt` or `opaque`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_format: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exchange_audiences: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auth_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Jwks>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub federated_credentials: Vec<FileFederated>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_subject_dn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_dns: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_email: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls_client_certificate_bound_access_tokens: bool,
}

/// `federated_credentials` entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileFederated {
    pub issuer: String,
    pub subject: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// An entry read from a file: where it was, and the client it declares (checked).
#[derive(Debug, Clone)]
pub struct Entry {
    /// `clients.yaml: clients[2] (acme/billing)`, for messages.
    pub place: String,
    pub client_id: Option<String>,
    pub tenant: String,
    pub name: String,
    /// Whether the file manages `active`.
    pub manages_active: bool,
    /// The client's fields as the API takes them (tenant and id unset).
    pub client: Client,
}

/// The files `-f` names: a file, or every `.yaml`, `.yml` and `.json` file under a folder
/// (sorted, recursively).
pub fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, AdminError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path)
            .map_err(|e| AdminError::usage(format!("-f {}: {e}", path.display())))?;
        if meta.is_dir() {
            collect(path, &mut out)?;
        } else {
            out.push(path.clone());
        }
    }
    if out.is_empty() {
        return Err(AdminError::usage(
            "no client files: -f names no .yaml, .yml or .json file",
        ));
    }
    Ok(out)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), AdminError> {
    let read = |e: std::io::Error| AdminError::usage(format!("-f {}: {e}", dir.display()));
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read)?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads and checks every entry of `files`; the first problem stops it, named by file, entry
/// and field. Two entries declaring the same client are refused.
pub fn read(files: &[PathBuf]) -> Result<Vec<Entry>, AdminError> {
    let mut entries: Vec<Entry> = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AdminError::usage(format!("{}: {e}", path.display())))?;
        for (d, document) in serde_norway::Deserializer::from_str(&text).enumerate() {
            let document = ClientsDocument::deserialize(document).map_err(|e| {
                AdminError::usage(format!("{}: document {}: {e}", path.display(), d + 1))
            })?;
            for (i, client) in document.clients.into_iter().enumerate() {
                let place = if d == 0 {
                    format!("{}: clients[{i}]", path.display())
                } else {
                    format!("{} (document {}): clients[{i}]", path.display(), d + 1)
                };
                let entry = entry(place, document.tenant.as_deref(), client)?;
                if let Some(other) = entries.iter().find(|e| e.same_client(&entry)) {
                    return Err(AdminError::usage(format!(
                        "{}: declares the same client as {}",
                        entry.place, other.place
                    )));
                }
                entries.push(entry);
            }
        }
    }
    Ok(entries)
}

impl Entry {
    fn same_client(&self, other: &Entry) -> bool {
        match (&self.client_id, &other.client_id) {
            (Some(a), Some(b)) => a == b,
            _ => self.tenant == other.tenant && self.name == other.name,
        }
    }
}

/// One entry checked: the tenant resolved and every field validated as the server would.
fn entry(place: String, tenant: Option<&str>, c: FileClient) -> Result<Entry, AdminError> {
    let tenant = c
        .tenant
        .clone()
        .or_else(|| tenant.map(str::to_owned))
        .filter(|t| !t.trim().is_empty());
    let Some(tenant) = tenant else {
        return Err(AdminError::usage(format!(
            "{place}: tenant: is required (on the entry, or `tenant:` for the whole document)"
        )));
    };
    let place = format!("{place} ({tenant}/{})", c.name);
    let bad =
        |field: &str, message: String| AdminError::usage(format!("{place}: {field}: {message}"));
    if c.name.trim().is_empty() {
        return Err(bad(
            "name",
            "is required: apply matches clients by tenant and name".into(),
        ));
    }
    let manages_active = c.active.is_some();
    let client_id = c.client_id.clone().filter(|id| !id.is_empty());
    let name = c.name.clone();
    let client = to_api(c).map_err(|(field, message)| bad(field, message))?;
    // The server's own field rules, here, so that a bad entry stops the run before any change.
    let input = crate::grpc::client_input(client.clone()).map_err(|s| {
        AdminError::usage(format!(
            "{place}: {}",
            s.message().trim_start_matches("client.")
        ))
    })?;
    ClientSpec::from_input(&input).map_err(|e| {
        AdminError::usage(format!(
            "{place}: {}",
            e.to_string().trim_start_matches("client.")
        ))
    })?;
    Ok(Entry {
        place,
        client_id,
        tenant,
        name,
        manages_active,
        client,
    })
}

fn seconds(
    field: &'static str,
    lifetime: Option<Lifetime>,
) -> Result<Option<prost_types::Duration>, (&'static str, String)> {
    let secs = match lifetime {
        None => return Ok(None),
        Some(Lifetime::Seconds(s)) => s,
        Some(Lifetime::Text(text)) => super::super::clients::parse_duration(&text)
            .map_err(|e| (field, e))?
            .as_secs(),
    };
    Ok(Some(prost_types::Duration {
        seconds: i64::try_from(secs).map_err(|_| (field, "is too long".to_owned()))?,
        nanos: 0,
    }))
}

/// The entry's fields as the API takes them; `Err` names the field.
fn to_api(c: FileClient) -> Result<Client, (&'static str, String)> {
    let access_token_format = match c.access_token_format.as_deref() {
        None => AccessTokenFormat::Unspecified,
        Some("jwt") => AccessTokenFormat::Jwt,
        Some("opaque") => AccessTokenFormat::Opaque,
        Some(other) => {
            return Err((
                "access_token_format",
                format!("{other:?}: write jwt or opaque"),
            ));
        }
    };
    let jwks = match c.jwks {
        None => String::new(),
        Some(Jwks::Text(text)) => text,
        Some(Jwks::Set(set)) => set.to_string(),
    };
    Ok(Client {
        name: c.name,
        description: c.description,
        active: c.active,
        scopes: c.scopes,
        audiences: c.audiences,
        roles: c.roles,
        access_token_ttl: seconds("access_token_ttl", c.access_token_ttl)?,
        refresh_token_ttl: seconds("refresh_token_ttl", c.refresh_token_ttl)?,
        allowed_cidrs: c.allowed_cidrs,
        rate_limit_per_minute: c.rate_limit_per_minute,
        refresh_rate_limit_per_minute: c.refresh_rate_limit_per_minute,
        api_rate_limit_per_minute: c.api_rate_limit_per_minute,
        metadata: c.metadata.into_iter().collect(),
        access_token_format: access_token_format.into(),
        exchange_audiences: c.exchange_audiences,
        auth_methods: c.auth_methods,
        jwks,
        jwks_uri: c.jwks_uri.unwrap_or_default(),
        federated_credentials: c
            .federated_credentials
            .into_iter()
            .map(|f| FederatedCredential {
                issuer: f.issuer,
                subject: f.subject,
            })
            .collect(),
        tls_client_auth_subject_dn: c.tls_client_auth_subject_dn.unwrap_or_default(),
        tls_client_auth_san_dns: c.tls_client_auth_san_dns.unwrap_or_default(),
        tls_client_auth_san_uri: c.tls_client_auth_san_uri.unwrap_or_default(),
        tls_client_auth_san_ip: c.tls_client_auth_san_ip.unwrap_or_default(),
        tls_client_auth_san_email: c.tls_client_auth_san_email.unwrap_or_default(),
        tls_client_certificate_bound_access_tokens: c.tls_client_certificate_bound_access_tokens,
        ..Client::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str) -> Result<Vec<Entry>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clients.yaml");
        std::fs::write(&path, text).unwrap();
        read(&[path]).map_err(|e| e.to_string())
    }

    #[test]
    fn documents_entries_and_the_file_wide_tenant() {
        let entries = read_text(
            "tenant: acme\nclients:\n  - name: a\n    access_token_ttl: 15m\n  \
             - {name: b, tenant: other, refresh_token_ttl: 86400}\n---\n\
             clients: [{tenant: third, name: c, jwks_uri: 'https://c.example/jwks'}]\n",
        )
        .unwrap();
        let names: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| (e.tenant.as_str(), e.name.as_str()))
            .collect();
        assert_eq!(names, [("acme", "a"), ("other", "b"), ("third", "c")]);
        assert_eq!(entries[0].client.access_token_ttl.unwrap().seconds, 900);
        assert_eq!(entries[1].client.refresh_token_ttl.unwrap().seconds, 86_400);
        assert_eq!(
            entries[2].place,
            format!(
                "{} (document 2): clients[0] (third/c)",
                entries[2].place.split(" (").next().unwrap()
            )
        );
    }

    #[test]
    fn errors_name_the_file_the_entry_and_the_field() {
        let err = read_text("tenant: t\nclients:\n  - {name: a, scopez: [x]}\n").unwrap_err();
        assert!(
            err.contains("clients.yaml") && err.contains("scopez"),
            "{err}"
        );
        let err =
            read_text("tenant: t\nclients:\n  - {name: a, access_token_ttl: 2w}\n").unwrap_err();
        assert!(
            err.contains("clients[0] (t/a): access_token_ttl") && err.contains("unit"),
            "{err}"
        );
        let err = read_text("tenant: t\nclients:\n  - {name: a, access_token_format: pasta}\n")
            .unwrap_err();
        assert!(err.contains("access_token_format"), "{err}");
        let err =
            read_text("tenant: t\nclients:\n  - {name: a, scopes: ['bad scope']}\n").unwrap_err();
        assert!(err.contains("(t/a): scopes"), "{err}");
    }
}
