//! The store's own query and result values: what to list, and what a purge removed.

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

/// Rows removed by a purge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    pub revocations: u64,
    pub changes: u64,
    pub refresh_tokens: u64,
    pub grants: u64,
    pub opaque_tokens: u64,
    /// `jti`s of client assertions that expired.
    pub assertion_jtis: u64,
}
