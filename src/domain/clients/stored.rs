//! What is kept of a client's secrets: never the secret, only its argon2id hash and a
//! non-secret selector to find it by.

use std::fmt;

/// One stored secret of a client.
#[derive(Clone, PartialEq)]
pub struct StoredSecret {
    pub secret_id: String,
    pub client_id: String,
    /// Non-secret lookup key derived from the secret (first 8 bytes of its SHA-256, hex).
    pub selector: String,
    /// argon2id PHC string.
    pub hash: String,
    pub create_time_us: i64,
    /// When the secret stops working (end of a rotation's grace period); `None`: never.
    pub expire_time_us: Option<i64>,
}

impl fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSecret")
            .field("secret_id", &self.secret_id)
            .field("client_id", &self.client_id)
            .field("hash", &"[redacted]")
            .finish()
    }
}

/// A live secret as verification needs it.
#[derive(Clone, PartialEq)]
pub struct LiveSecret {
    /// argon2id PHC string.
    pub hash: String,
    /// When the secret stops working (end of a rotation's grace period); `None`: never.
    pub expire_time_us: Option<i64>,
}

impl fmt::Debug for LiveSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSecret")
            .field("expire_time_us", &self.expire_time_us)
            .finish_non_exhaustive()
    }
}
