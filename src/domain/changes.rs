//! The change log every replica follows to keep its in-memory view current, and the deny list
//! whose entries make revoked tokens inactive. Every write a replica must hear of appends one
//! change in the same transaction.

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub seq: i64,
    /// Read as stored: a kind this version does not know comes back as `Unknown`, so a replica
    /// can skip it rather than fail to read the log.
    pub kind: ChangeKind,
    pub subject: String,
    /// For `token`, `grant` and `lockout`: when the entry stops mattering.
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
    /// Failed authentications locked a client id, an address or a client at an address
    /// (subject `client:<id>`, `address:<net>` or `pair:<id>@<net>`) until the entry's expiry.
    Lockout,
    /// A client authenticated from an address: it is trusted there until the entry's expiry
    /// (subject `<id>@<net>`).
    Trust,
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
            Self::Trust => "trust",
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
            "trust" => Self::Trust,
            other => Self::Unknown(other.to_owned()),
        }
    }
}

/// One deny-list entry: kind `token` (subject = jti) or `grant` (subject = grant id).
#[derive(Debug, Clone, PartialEq)]
pub struct DenyEntry {
    pub kind: ChangeKind,
    pub subject: String,
    pub client_id: String,
    pub expire_time_us: i64,
    pub create_time_us: i64,
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
            (ChangeKind::Trust, "trust"),
        ];
        for (kind, stored) in known {
            assert_eq!(kind.as_str(), stored);
            assert_eq!(ChangeKind::parse(stored), kind);
        }
    }

    #[test]
    fn an_unknown_change_kind_is_kept_not_refused() {
        let kind = ChangeKind::parse("quota");
        assert_eq!(kind, ChangeKind::Unknown("quota".into()));
        assert_eq!(kind.as_str(), "quota");
    }
}
