//! The rows of both backends, private to the store, and their conversions to and from the
//! domain's types (quickwit's `metastore/postgres/model.rs` pattern). Timestamps are Unix
//! microseconds; list-like columns are JSON (`jsonb` in Postgres, text in SQLite), so one
//! `FromRow` derive serves both: `#[sqlx(json)]` decodes a JSON column and the writes bind
//! `Json(&field)`. A stored row that does not parse into its domain type is corrupt: an
//! `Unexpected` store error that names it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::domain::changes::{Change, ChangeKind, DenyEntry};
use crate::domain::clients::{
    Client, ClientInput, ClientSpec, FederatedCredential, LiveSecret, TokenFormat,
};
use crate::domain::clock::{from_micros, to_micros};
use crate::domain::keys::{SealedSecret, StoredKey};
use crate::domain::policy::TrustedAddress;
use crate::domain::token_endpoint::{OpaqueRecord, RefreshFamily, RefreshRecord};
use crate::domain::{AuditEvent, AuditKind, ClientId, TenantId};
use crate::store::{StoreError, StoreResult};

fn corrupt(what: String) -> StoreError {
    StoreError::Unexpected(anyhow::anyhow!(what))
}

/// One row of `clients`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(super) struct ClientRow {
    pub client_id: String,
    pub tenant: String,
    pub name: String,
    pub description: String,
    #[sqlx(json)]
    pub scopes: Vec<String>,
    #[sqlx(json)]
    pub audiences: Vec<String>,
    #[sqlx(json)]
    pub roles: Vec<String>,
    pub access_token_ttl_secs: i64,
    pub refresh_token_ttl_secs: i64,
    pub active: bool,
    #[sqlx(json)]
    pub allowed_cidrs: Vec<String>,
    pub rate_limit_per_minute: i64,
    pub refresh_rate_limit_per_minute: i64,
    pub api_rate_limit_per_minute: i64,
    #[sqlx(json)]
    pub metadata: BTreeMap<String, String>,
    /// `jwt` or `opaque`.
    pub access_token_format: String,
    #[sqlx(json)]
    pub exchange_audiences: Vec<String>,
    /// RFC 7591 method names.
    #[sqlx(json)]
    pub auth_methods: Vec<String>,
    /// The client's JWK Set as compact JSON; empty: none.
    pub jwks: String,
    /// Where the client publishes its JWK Set; empty: nowhere.
    pub jwks_uri: String,
    #[sqlx(json)]
    pub federated_credentials: Vec<FederatedCredential>,
    /// RFC 8705 subject values (empty: unset; at most one set).
    pub tls_client_auth_subject_dn: String,
    pub tls_client_auth_san_dns: String,
    pub tls_client_auth_san_uri: String,
    pub tls_client_auth_san_ip: String,
    pub tls_client_auth_san_email: String,
    pub tls_client_certificate_bound_access_tokens: bool,
    pub create_time_us: i64,
    pub update_time_us: i64,
    pub last_used_time_us: Option<i64>,
    /// Bumped by every update; the optimistic-concurrency token.
    pub revision: i64,
    /// Bumped when all the client's tokens are revoked; access tokens of older generations
    /// are inactive. Never set by `update_client` directly (see its `revoke_tokens`).
    pub token_generation: i64,
}

impl From<&Client> for ClientRow {
    fn from(client: &Client) -> Self {
        let s = &client.spec;
        let [dn, dns, uri, ip, email] = s.tls_subject.texts();
        Self {
            client_id: client.id.as_str().to_owned(),
            tenant: client.tenant.as_str().to_owned(),
            name: s.name.clone(),
            description: s.description.clone(),
            scopes: s.scopes.to_strings(),
            audiences: s.audiences.iter().cloned().collect(),
            roles: s.roles.iter().cloned().collect(),
            access_token_ttl_secs: secs(s.access_token_ttl),
            refresh_token_ttl_secs: secs(s.refresh_token_ttl),
            active: s.active,
            allowed_cidrs: s.allowed_cidrs.iter().map(ToString::to_string).collect(),
            rate_limit_per_minute: i64::from(s.rate_limit_per_minute),
            refresh_rate_limit_per_minute: i64::from(s.refresh_rate_limit_per_minute),
            api_rate_limit_per_minute: i64::from(s.api_rate_limit_per_minute),
            metadata: s.metadata.clone(),
            access_token_format: s.access_token_format.as_str().to_owned(),
            exchange_audiences: s.exchange_audiences.iter().cloned().collect(),
            auth_methods: s.auth_methods.names(),
            jwks: s.jwks_text(),
            jwks_uri: s.jwks_uri.clone().unwrap_or_default(),
            federated_credentials: s.federated_credentials.clone(),
            tls_client_auth_subject_dn: dn,
            tls_client_auth_san_dns: dns,
            tls_client_auth_san_uri: uri,
            tls_client_auth_san_ip: ip,
            tls_client_auth_san_email: email,
            tls_client_certificate_bound_access_tokens: s.certificate_bound_tokens,
            create_time_us: to_micros(client.create_time),
            update_time_us: to_micros(client.update_time),
            last_used_time_us: client.last_used_time.map(to_micros),
            revision: client.revision,
            token_generation: client.token_generation,
        }
    }
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;

    /// Parses the row with the same rules as a client's input, so a stored client is always one
    /// the API could have created.
    fn try_from(row: ClientRow) -> StoreResult<Self> {
        let id = row.client_id.clone();
        let bad = |e: crate::domain::Error| corrupt(format!("stored client {id} is corrupt: {e}"));
        let format = TokenFormat::parse_stored(&row.access_token_format).ok_or_else(|| {
            corrupt(format!(
                "stored client {id} has unknown token format {:?}",
                row.access_token_format
            ))
        })?;
        let input = ClientInput {
            tenant: row.tenant.clone(),
            name: row.name,
            description: row.description,
            scopes: row.scopes,
            audiences: row.audiences,
            roles: row.roles,
            access_token_ttl: Some(Duration::from_secs(row.access_token_ttl_secs.max(0) as u64)),
            refresh_token_ttl: Some(Duration::from_secs(row.refresh_token_ttl_secs.max(0) as u64)),
            active: Some(row.active),
            allowed_cidrs: row.allowed_cidrs,
            rate_limit_per_minute: u32::try_from(row.rate_limit_per_minute).unwrap_or(u32::MAX),
            refresh_rate_limit_per_minute: u32::try_from(row.refresh_rate_limit_per_minute)
                .unwrap_or(u32::MAX),
            api_rate_limit_per_minute: u32::try_from(row.api_rate_limit_per_minute)
                .unwrap_or(u32::MAX),
            metadata: row.metadata,
            access_token_format: Some(format),
            exchange_audiences: row.exchange_audiences,
            auth_methods: row.auth_methods,
            jwks: row.jwks,
            jwks_uri: row.jwks_uri,
            federated_credentials: row.federated_credentials,
            tls_client_auth_subject: [
                row.tls_client_auth_subject_dn,
                row.tls_client_auth_san_dns,
                row.tls_client_auth_san_uri,
                row.tls_client_auth_san_ip,
                row.tls_client_auth_san_email,
            ],
            tls_client_certificate_bound_access_tokens: row
                .tls_client_certificate_bound_access_tokens,
        };
        Ok(Self {
            id: ClientId::parse("client_id", &id).map_err(bad)?,
            tenant: TenantId::parse("tenant", &row.tenant).map_err(bad)?,
            spec: ClientSpec::from_input(&input).map_err(bad)?,
            create_time: from_micros(row.create_time_us),
            update_time: from_micros(row.update_time_us),
            last_used_time: row.last_used_time_us.map(from_micros),
            revision: row.revision,
            token_generation: row.token_generation,
        })
    }
}

/// The clients of `rows`; a corrupt one is logged and left out, so that one bad row does not
/// hide every other client (from a replica loading its view, or an admin listing them).
pub(super) fn parsed_clients(rows: Vec<ClientRow>) -> Vec<Client> {
    rows.into_iter()
        .filter_map(|row| match Client::try_from(row) {
            Ok(client) => Some(client),
            Err(err) => {
                tracing::error!(error = %err, "skipping a corrupt client");
                None
            }
        })
        .collect()
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// A live secret's columns.
#[derive(sqlx::FromRow)]
pub(super) struct LiveSecretRow {
    hash: String,
    expire_time_us: Option<i64>,
}

impl From<LiveSecretRow> for LiveSecret {
    fn from(row: LiveSecretRow) -> Self {
        Self {
            hash: row.hash,
            expire_time_us: row.expire_time_us,
        }
    }
}

/// One row of `signing_keys`.
#[derive(sqlx::FromRow)]
pub(super) struct KeyRow {
    kid: String,
    algorithm: String,
    public_jwk: String,
    private_key: Vec<u8>,
    kek_id: String,
    create_time_us: i64,
    activate_time_us: i64,
    retire_time_us: Option<i64>,
}

impl From<KeyRow> for StoredKey {
    fn from(row: KeyRow) -> Self {
        Self {
            kid: row.kid,
            algorithm: row.algorithm,
            public_jwk: row.public_jwk,
            private_key: row.private_key,
            kek_id: row.kek_id,
            create_time_us: row.create_time_us,
            activate_time_us: row.activate_time_us,
            retire_time_us: row.retire_time_us,
        }
    }
}

/// One row of `sealed_secrets`.
#[derive(sqlx::FromRow)]
pub(super) struct SealedSecretRow {
    name: String,
    sealed: Vec<u8>,
    kek_id: String,
    create_time_us: i64,
}

impl From<SealedSecretRow> for SealedSecret {
    fn from(row: SealedSecretRow) -> Self {
        Self {
            name: row.name,
            sealed: row.sealed,
            kek_id: row.kek_id,
            create_time_us: row.create_time_us,
        }
    }
}

/// One row of `grants` (a refresh family).
#[derive(sqlx::FromRow)]
pub(super) struct GrantRow {
    grant_id: String,
    client_id: String,
    #[sqlx(json)]
    scopes: Vec<String>,
    #[sqlx(json)]
    audiences: Vec<String>,
    create_time_us: i64,
    token_generation: i64,
    access_expire_time_us: i64,
    refresh_expire_time_us: i64,
    revoke_time_us: Option<i64>,
    cnf_x5t_s256: Option<String>,
}

impl From<GrantRow> for RefreshFamily {
    fn from(row: GrantRow) -> Self {
        Self {
            grant_id: row.grant_id,
            client_id: row.client_id,
            scopes: row.scopes,
            audiences: row.audiences,
            create_time_us: row.create_time_us,
            token_generation: row.token_generation,
            access_expire_time_us: row.access_expire_time_us,
            refresh_expire_time_us: row.refresh_expire_time_us,
            revoke_time_us: row.revoke_time_us,
            cnf_x5t_s256: row.cnf_x5t_s256,
        }
    }
}

/// One row of `refresh_tokens`.
#[derive(sqlx::FromRow)]
pub(super) struct RefreshRow {
    token_hash: String,
    grant_id: String,
    create_time_us: i64,
    expire_time_us: i64,
    use_time_us: Option<i64>,
}

impl From<RefreshRow> for RefreshRecord {
    fn from(row: RefreshRow) -> Self {
        Self {
            token_hash: row.token_hash,
            grant_id: row.grant_id,
            create_time_us: row.create_time_us,
            expire_time_us: row.expire_time_us,
            use_time_us: row.use_time_us,
        }
    }
}

/// One row of `opaque_tokens`.
#[derive(sqlx::FromRow)]
pub(super) struct OpaqueRow {
    token_hash: String,
    jti: String,
    client_id: String,
    #[sqlx(json)]
    claims: serde_json::Value,
    expire_time_us: i64,
}

impl From<OpaqueRow> for OpaqueRecord {
    fn from(row: OpaqueRow) -> Self {
        Self {
            token_hash: row.token_hash,
            jti: row.jti,
            client_id: row.client_id,
            claims: row.claims,
            expire_time_us: row.expire_time_us,
        }
    }
}

/// One row of `revocations` (the deny list).
#[derive(sqlx::FromRow)]
pub(super) struct RevocationRow {
    kind: String,
    subject: String,
    client_id: String,
    expire_time_us: i64,
    create_time_us: i64,
}

impl From<RevocationRow> for DenyEntry {
    fn from(row: RevocationRow) -> Self {
        Self {
            kind: ChangeKind::parse(&row.kind),
            subject: row.subject,
            client_id: row.client_id,
            expire_time_us: row.expire_time_us,
            create_time_us: row.create_time_us,
        }
    }
}

/// One row of `changes`.
#[derive(sqlx::FromRow)]
pub(super) struct ChangeRow {
    seq: i64,
    kind: String,
    subject: String,
    expire_time_us: i64,
    create_time_us: i64,
}

impl From<ChangeRow> for Change {
    fn from(row: ChangeRow) -> Self {
        Self {
            seq: row.seq,
            kind: ChangeKind::parse(&row.kind),
            subject: row.subject,
            expire_time_us: row.expire_time_us,
            create_time_us: row.create_time_us,
        }
    }
}

/// One row of `audit_events`. Never holds a secret or a token.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(super) struct AuditRow {
    pub event_id: String,
    pub time_us: i64,
    pub tenant: String,
    pub client_id: String,
    pub actor: String,
    /// Empty when unknown.
    pub source_address: String,
    pub kind: String,
    #[sqlx(json)]
    pub details: BTreeMap<String, String>,
    /// Occurrences the row stands for; added to when an aggregated row is recorded again.
    pub count: i64,
}

impl From<&AuditEvent> for AuditRow {
    fn from(event: &AuditEvent) -> Self {
        Self {
            event_id: event.event_id.clone(),
            time_us: to_micros(event.time),
            tenant: event.tenant.clone(),
            client_id: event.client_id.clone(),
            actor: event.actor.clone(),
            source_address: event
                .source_address
                .map(|a| a.to_string())
                .unwrap_or_default(),
            kind: event.kind.as_str().to_owned(),
            details: event.details.clone(),
            count: i64::try_from(event.count).unwrap_or(i64::MAX),
        }
    }
}

impl TryFrom<AuditRow> for AuditEvent {
    type Error = StoreError;

    fn try_from(row: AuditRow) -> StoreResult<Self> {
        let kind = AuditKind::parse(&row.kind)
            .ok_or_else(|| corrupt(format!("unknown audit event kind {:?}", row.kind)))?;
        Ok(Self {
            event_id: row.event_id,
            time: from_micros(row.time_us),
            tenant: row.tenant,
            client_id: row.client_id,
            actor: row.actor,
            source_address: row.source_address.parse().ok(),
            kind,
            details: row.details,
            count: u64::try_from(row.count).unwrap_or(0),
        })
    }
}

/// One row of `trusted_addresses`.
#[derive(sqlx::FromRow)]
pub(super) struct TrustRow {
    client_id: String,
    address: String,
    until_us: i64,
}

impl TrustRow {
    /// The pair, unless its address does not parse (then it is logged and left out: trust is
    /// an exemption, and a pair that cannot be read exempts nothing).
    pub(super) fn parse(self) -> Option<TrustedAddress> {
        match self.address.parse() {
            Ok(address) => Some(TrustedAddress {
                client_id: self.client_id,
                address,
                until_us: self.until_us,
            }),
            Err(_) => {
                tracing::error!(client_id = %self.client_id, address = %self.address, "skipping a corrupt trusted address");
                None
            }
        }
    }
}

/// Converts every row read.
pub(super) fn all<R, T: From<R>>(rows: Vec<R>) -> Vec<T> {
    rows.into_iter().map(T::from).collect()
}

#[cfg(test)]
#[path = "rows_tests.rs"]
mod tests;
