//! Row records shared by both backends. Timestamps are Unix microseconds; list-like columns
//! are JSON (`jsonb` in Postgres, text in SQLite), so one `FromRow` derive serves both. Their
//! fields are plain Rust values: `#[sqlx(json)]` decodes a JSON column, and the store's writes
//! bind `Json(&field)`, so no caller ever sees how a column is encoded.

use std::collections::BTreeMap;

/// One row of `clients`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ClientRow {
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
    #[sqlx(json)]
    pub metadata: BTreeMap<String, String>,
    /// `jwt` or `opaque`.
    pub access_token_format: String,
    #[sqlx(json)]
    pub exchange_audiences: Vec<String>,
    pub create_time_us: i64,
    pub update_time_us: i64,
    pub last_used_time_us: Option<i64>,
    /// Bumped by every update; the optimistic-concurrency token.
    pub revision: i64,
    /// Bumped when all the client's tokens are revoked; access tokens of older generations
    /// are inactive. Never set by `update_client` directly (see its `revoke_tokens`).
    pub token_generation: i64,
}

/// One row of `client_secrets`: only ever a hash.
#[derive(Clone, PartialEq, sqlx::FromRow)]
pub struct SecretRow {
    pub secret_id: String,
    pub client_id: String,
    /// Non-secret lookup key derived from the secret (first 8 bytes of its SHA-256, hex).
    pub selector: String,
    /// argon2id PHC string.
    pub hash: String,
    pub create_time_us: i64,
    pub expire_time_us: Option<i64>,
}

/// A live secret as verification needs it.
#[derive(Clone, PartialEq, sqlx::FromRow)]
pub struct LiveSecret {
    /// argon2id PHC string.
    pub hash: String,
    /// When the secret stops working (end of a rotation's grace period); `None`: never.
    pub expire_time_us: Option<i64>,
}

impl std::fmt::Debug for LiveSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSecret")
            .field("expire_time_us", &self.expire_time_us)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SecretRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRow")
            .field("secret_id", &self.secret_id)
            .field("client_id", &self.client_id)
            .field("hash", &"[redacted]")
            .finish()
    }
}

/// One row of `signing_keys`. `private_key` is ciphertext under the KEK named by `kek_id`.
#[derive(Clone, PartialEq, sqlx::FromRow)]
pub struct KeyRow {
    pub kid: String,
    pub algorithm: String,
    pub public_jwk: String,
    pub private_key: Vec<u8>,
    pub kek_id: String,
    pub create_time_us: i64,
    pub activate_time_us: i64,
    pub retire_time_us: Option<i64>,
}

impl std::fmt::Debug for KeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRow")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("kek_id", &self.kek_id)
            .finish_non_exhaustive()
    }
}

/// One row of `sealed_secrets`: a secret other than a signing key (today only the MAC key),
/// sealed under the KEK named by `kek_id` like a signing key, so a KEK rotation re-seals it too.
#[derive(Clone, PartialEq, sqlx::FromRow)]
pub struct SealedSecretRow {
    pub name: String,
    pub sealed: Vec<u8>,
    pub kek_id: String,
    pub create_time_us: i64,
}

impl std::fmt::Debug for SealedSecretRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecretRow")
            .field("name", &self.name)
            .field("kek_id", &self.kek_id)
            .finish_non_exhaustive()
    }
}

/// What a KEK rotation changes in one sealed value: the row `name` (a signing key's kid, or a
/// sealed secret's name) held `old` and gets `new`, sealed under the rotation's KEK.
#[derive(Clone)]
pub struct Resealed {
    pub name: String,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
}

impl std::fmt::Debug for Resealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resealed")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One refresh-token family (`grants`).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct GrantRow {
    pub grant_id: String,
    pub client_id: String,
    #[sqlx(json)]
    pub scopes: Vec<String>,
    #[sqlx(json)]
    pub audiences: Vec<String>,
    pub create_time_us: i64,
    /// The client's token generation when the family began.
    pub token_generation: i64,
    /// Latest expiry of any access token issued from the family.
    pub access_expire_time_us: i64,
    /// Expiry of the family's newest refresh token.
    pub refresh_expire_time_us: i64,
    pub revoke_time_us: Option<i64>,
}

/// One refresh token: only ever its SHA-256.
#[derive(Clone, PartialEq, sqlx::FromRow)]
pub struct RefreshRow {
    pub token_hash: String,
    pub grant_id: String,
    pub create_time_us: i64,
    pub expire_time_us: i64,
    /// When it was exchanged (it is spent from then on).
    pub use_time_us: Option<i64>,
}

impl std::fmt::Debug for RefreshRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshRow")
            .field("grant_id", &self.grant_id)
            .field("expire_time_us", &self.expire_time_us)
            .field("use_time_us", &self.use_time_us)
            .finish_non_exhaustive()
    }
}

/// What happened to a refresh token presented for exchange.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshClaim {
    /// The token was live and is now spent; its successor is stored. The family as it is now.
    Rotated(GrantRow),
    /// Nothing was exchanged: the token is unknown, or spent, expired, of a revoked family or
    /// of another client. The stored state, when the token is known. One difference between
    /// the backends: when the family is revoked while the exchange is under way, Postgres
    /// (one statement) leaves the token spent and SQLite (one transaction, rolled back) leaves
    /// it unspent; either way it belongs to a revoked family and can never be exchanged.
    Rejected(Option<(RefreshRow, GrantRow)>),
}

/// One opaque access token: only ever its SHA-256, with the claims it stands for.
#[derive(Clone, PartialEq, sqlx::FromRow)]
pub struct OpaqueRow {
    pub token_hash: String,
    pub jti: String,
    pub client_id: String,
    #[sqlx(json)]
    pub claims: serde_json::Value,
    pub expire_time_us: i64,
}

impl std::fmt::Debug for OpaqueRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpaqueRow")
            .field("jti", &self.jti)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// One deny-list entry: kind `token` (subject = jti) or `grant` (subject = grant id).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RevocationRow {
    pub kind: String,
    pub subject: String,
    pub client_id: String,
    pub expire_time_us: i64,
    pub create_time_us: i64,
}

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ChangeRow {
    pub seq: i64,
    /// Read as stored: a kind this version does not know comes back as `Unknown`, so a replica
    /// can skip it rather than fail to read the log.
    #[sqlx(try_from = "String")]
    pub kind: ChangeKind,
    pub subject: String,
    /// For `token` and `grant`: when the deny entry may go.
    pub expire_time_us: i64,
    pub create_time_us: i64,
}

/// What a change-log entry is about; `Token` and `Grant` are the deny list's kinds too. Stored
/// as the text `as_str` gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// A client was created, changed or deleted, had its tokens revoked or a secret rotated
    /// (subject: the client id).
    Client,
    /// One access token was revoked (subject: its jti).
    Token,
    /// One refresh family was revoked (subject: its grant id).
    Grant,
    /// The signing keys changed (subject: the new key's kid).
    Keys,
    /// Failed authentications locked a client id or an address (subject `client:<id>` or
    /// `address:<net>`) until the entry's expiry.
    Lockout,
    /// A kind this version does not know (a newer one wrote it): read, never written.
    Unknown(String),
}

impl ChangeKind {
    /// The stored text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Client => "client",
            Self::Token => "token",
            Self::Grant => "grant",
            Self::Keys => "keys",
            Self::Lockout => "lockout",
            Self::Unknown(kind) => kind,
        }
    }

    /// The kind a stored text names; never fails (see `Unknown`).
    pub fn parse(stored: &str) -> Self {
        match stored {
            "client" => Self::Client,
            "token" => Self::Token,
            "grant" => Self::Grant,
            "keys" => Self::Keys,
            "lockout" => Self::Lockout,
            other => Self::Unknown(other.to_owned()),
        }
    }
}

impl From<String> for ChangeKind {
    fn from(stored: String) -> Self {
        Self::parse(&stored)
    }
}

/// Rows removed by a purge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    pub revocations: u64,
    pub changes: u64,
    pub refresh_tokens: u64,
    pub grants: u64,
    pub opaque_tokens: u64,
}

/// One row of `audit_events`. Never holds a secret or a token.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditRow {
    /// Time-ordered (UUID v7), or for aggregated refusals derived from client, kind and minute.
    pub event_id: String,
    pub time_us: i64,
    /// Empty when no tenant is concerned.
    pub tenant: String,
    /// Empty when no client is concerned.
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

/// Which audit events to list, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// Only this tenant's events; `None`: every tenant.
    pub tenant: Option<String>,
    pub client_id: Option<String>,
    /// Only these kinds; empty: every kind.
    pub kinds: Vec<String>,
    /// At or after (Unix µs).
    pub start_us: Option<i64>,
    /// Before (Unix µs).
    pub end_us: Option<i64>,
    /// Strictly older than this (time, event id): the last event of the previous page.
    pub before: Option<(i64, String)>,
}

/// Usage counters of one client on one UTC day (`day`: days since the Unix epoch). Written as
/// increments: recording a row adds its counts to the stored ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct UsageRow {
    pub client_id: String,
    pub day: i64,
    pub tokens_issued: i64,
    pub refreshes: i64,
    pub refused_address: i64,
    pub refused_rate_limit: i64,
    pub refused_lockout: i64,
    pub refused_bad_secret: i64,
    pub introspections_active: i64,
    pub introspections_inactive: i64,
}

#[cfg(test)]
mod tests {
    use super::ChangeKind;

    #[test]
    fn change_kinds_keep_their_stored_text() {
        let known = [
            (ChangeKind::Client, "client"),
            (ChangeKind::Token, "token"),
            (ChangeKind::Grant, "grant"),
            (ChangeKind::Keys, "keys"),
            (ChangeKind::Lockout, "lockout"),
        ];
        for (kind, stored) in known {
            assert_eq!(kind.as_str(), stored);
            assert_eq!(ChangeKind::parse(stored), kind);
        }
    }

    #[test]
    fn an_unknown_change_kind_is_kept_not_refused() {
        let kind = ChangeKind::from("quota".to_owned());
        assert_eq!(kind, ChangeKind::Unknown("quota".into()));
        assert_eq!(kind.as_str(), "quota");
    }
}
