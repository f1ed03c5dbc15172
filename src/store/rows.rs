//! Row records shared by both backends. Timestamps are Unix microseconds; list-like columns
//! are JSON, so one `FromRow` derive serves Postgres and SQLite alike.

use std::collections::BTreeMap;

use sqlx::types::Json;

/// One row of `clients`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ClientRow {
    pub client_id: String,
    pub tenant: String,
    pub name: String,
    pub description: String,
    pub scopes: Json<Vec<String>>,
    pub audiences: Json<Vec<String>>,
    pub roles: Json<Vec<String>>,
    pub access_token_ttl_secs: i64,
    pub refresh_token_ttl_secs: i64,
    pub active: bool,
    pub allowed_cidrs: Json<Vec<String>>,
    pub rate_limit_per_minute: i64,
    pub metadata: Json<BTreeMap<String, String>>,
    pub create_time_us: i64,
    pub update_time_us: i64,
    pub last_used_time_us: Option<i64>,
    /// Bumped by every update; the optimistic-concurrency token.
    pub revision: i64,
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
