//! What the token endpoint keeps between calls: refresh families with their refresh tokens
//! (only ever hashes), and opaque access tokens (only ever hashes, with their claims).

use std::fmt;

/// One refresh-token family: every refresh token descended from one client-credentials grant.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshFamily {
    pub grant_id: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub create_time_us: i64,
    /// The client's token generation when the family began.
    pub token_generation: i64,
    /// Latest expiry of any access token issued from the family.
    pub access_expire_time_us: i64,
    /// Expiry of the family's newest refresh token.
    pub refresh_expire_time_us: i64,
    pub revoke_time_us: Option<i64>,
    /// The `x5t#S256` of the certificate the family's access tokens are bound to (RFC 8705):
    /// a refresh is answered only for that certificate, with tokens bound to it.
    pub cnf_x5t_s256: Option<String>,
}

/// One refresh token: only ever its SHA-256.
#[derive(Clone, PartialEq)]
pub struct RefreshRecord {
    pub token_hash: String,
    pub grant_id: String,
    pub create_time_us: i64,
    pub expire_time_us: i64,
    /// When it was exchanged (it is spent from then on).
    pub use_time_us: Option<i64>,
}

impl fmt::Debug for RefreshRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshRecord")
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
    Rotated(RefreshFamily),
    /// Nothing was exchanged: the token is unknown, or spent, expired, of a revoked family or
    /// of another client. The stored state, when the token is known. One difference between
    /// the backends: when the family is revoked while the exchange is under way, Postgres
    /// (one statement) leaves the token spent and SQLite (one transaction, rolled back) leaves
    /// it unspent; either way it belongs to a revoked family and can never be exchanged.
    Rejected(Option<(RefreshRecord, RefreshFamily)>),
}

/// One opaque access token: only ever its SHA-256, with the claims it stands for.
#[derive(Clone, PartialEq)]
pub struct OpaqueRecord {
    pub token_hash: String,
    pub jti: String,
    pub client_id: String,
    pub claims: serde_json::Value,
    pub expire_time_us: i64,
}

impl fmt::Debug for OpaqueRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpaqueRecord")
            .field("jti", &self.jti)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}
