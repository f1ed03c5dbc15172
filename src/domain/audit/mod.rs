//! The audit trail: what happened to clients, keys and tokens, who did it and from where.
//!
//! - Admin events (a client created, updated, disabled, deleted, its secret rotated or its
//!   tokens revoked; a signing key rotated; the KEK rotated) and refresh-token reuse are
//!   written by the store in the same transaction as the change they record, then logged.
//! - Token-endpoint refusals (address, rate limit, lockout, bad secret) and the edge's refusals
//!   over an API quota are counted in memory and written in batches as one event per client,
//!   kind and minute with a count, so a flood of refusals costs neither a write per call nor
//!   unbounded disk.
//! - Every event is also one log line with target `tokend::audit` (JSON with
//!   `log.format = json`), for a SIEM. No event holds a secret or a token.

mod query;
pub mod usage;

use std::collections::BTreeMap;
use std::net::IpAddr;

use time::OffsetDateTime;

use crate::domain::clock::{from_micros, to_micros};
use crate::domain::introspection::caller::Caller;

pub use query::{AuditAdmin, AuditPage, AuditQuery, ClientUsage, DailyUsage};
pub use usage::{UsageCounts, UsageRecorder};

/// The actor of changes made at the command line.
pub const CLI_ACTOR: &str = "cli";
/// The actor of what tokend does by itself (scheduled key rotation).
pub const SYSTEM_ACTOR: &str = "tokend";

/// What happened. The stored names are the snake_case of the variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuditKind {
    ClientCreated,
    ClientUpdated,
    ClientDeleted,
    ClientDisabled,
    SecretRotated,
    ClientTokensRevoked,
    SigningKeyRotated,
    RefreshReuseDetected,
    RefusedAddress,
    RefusedRateLimit,
    RefusedLockout,
    RefusedBadSecret,
    ClientBootstrapped,
    KekRotated,
    ApiRefusedRateLimit,
}

impl AuditKind {
    /// Every kind, in the API's order.
    pub const ALL: [AuditKind; 15] = [
        AuditKind::ClientCreated,
        AuditKind::ClientUpdated,
        AuditKind::ClientDeleted,
        AuditKind::ClientDisabled,
        AuditKind::SecretRotated,
        AuditKind::ClientTokensRevoked,
        AuditKind::SigningKeyRotated,
        AuditKind::RefreshReuseDetected,
        AuditKind::RefusedAddress,
        AuditKind::RefusedRateLimit,
        AuditKind::RefusedLockout,
        AuditKind::RefusedBadSecret,
        AuditKind::ClientBootstrapped,
        AuditKind::KekRotated,
        AuditKind::ApiRefusedRateLimit,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::ClientCreated => "client_created",
            AuditKind::ClientUpdated => "client_updated",
            AuditKind::ClientDeleted => "client_deleted",
            AuditKind::ClientDisabled => "client_disabled",
            AuditKind::SecretRotated => "secret_rotated",
            AuditKind::ClientTokensRevoked => "client_tokens_revoked",
            AuditKind::SigningKeyRotated => "signing_key_rotated",
            AuditKind::RefreshReuseDetected => "refresh_reuse_detected",
            AuditKind::RefusedAddress => "token_refused_address",
            AuditKind::RefusedRateLimit => "token_refused_rate_limit",
            AuditKind::RefusedLockout => "token_refused_lockout",
            AuditKind::RefusedBadSecret => "token_refused_bad_secret",
            AuditKind::ClientBootstrapped => "client_bootstrapped",
            AuditKind::KekRotated => "kek_rotated",
            AuditKind::ApiRefusedRateLimit => "api_refused_rate_limit",
        }
    }

    /// The kind a stored name stands for.
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == stored)
    }

    /// Whether events of this kind are counted in memory and written per minute.
    pub fn is_aggregated(self) -> bool {
        matches!(
            self,
            AuditKind::RefusedAddress
                | AuditKind::RefusedRateLimit
                | AuditKind::RefusedLockout
                | AuditKind::RefusedBadSecret
                | AuditKind::ApiRefusedRateLimit
        )
    }
}

/// One audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub event_id: String,
    pub time: OffsetDateTime,
    /// Empty when no tenant is concerned.
    pub tenant: String,
    /// Empty when no (known) client is concerned.
    pub client_id: String,
    pub actor: String,
    pub source_address: Option<IpAddr>,
    pub kind: AuditKind,
    pub details: BTreeMap<String, String>,
    /// Occurrences: 1, or an aggregated refusal's count in its minute.
    pub count: u64,
}

impl AuditEvent {
    /// An event of `kind` at `now`, with a fresh time-ordered id, counted once.
    pub fn new(kind: AuditKind, now: OffsetDateTime) -> Self {
        Self {
            event_id: uuid::Uuid::now_v7().simple().to_string(),
            time: from_micros(to_micros(now)),
            tenant: String::new(),
            client_id: String::new(),
            actor: String::new(),
            source_address: None,
            kind,
            details: BTreeMap::new(),
            count: 1,
        }
    }

    /// An admin's change to a client of `tenant`, made by `caller`.
    pub fn by_caller(
        kind: AuditKind,
        caller: &Caller,
        tenant: &str,
        client_id: &str,
        now: OffsetDateTime,
    ) -> Self {
        let mut event = Self::new(kind, now);
        event.tenant = tenant.to_owned();
        event.client_id = client_id.to_owned();
        event.actor = actor(caller);
        event.source_address = caller.address;
        event
    }

    /// Adds a detail.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// The event's log line (target `tokend::audit`). Called once the event is stored.
    pub fn log(&self) {
        let details = serde_json::to_string(&self.details).unwrap_or_default();
        let address = self.source_address.map(|a| a.to_string());
        tracing::info!(
            target: "tokend::audit",
            event_id = %self.event_id,
            kind = self.kind.as_str(),
            tenant = %self.tenant,
            client_id = %self.client_id,
            actor = %self.actor,
            source_address = address.as_deref().unwrap_or(""),
            count = self.count,
            details = %details,
            "audit"
        );
    }
}

/// Who a caller is in the trail: its client id, or `cli` for the operator at the command line.
pub fn actor(caller: &Caller) -> String {
    if caller.is_operator() {
        CLI_ACTOR.to_owned()
    } else {
        caller.client_id.clone()
    }
}

/// Logs events that were just stored.
pub fn log_all(events: &[AuditEvent]) {
    for e in events {
        e.log();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_only_refusals_aggregate() {
        for kind in AuditKind::ALL {
            assert_eq!(AuditKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(AuditKind::parse("nonsense"), None);
        let aggregated: Vec<_> = AuditKind::ALL
            .into_iter()
            .filter(|k| k.is_aggregated())
            .collect();
        assert_eq!(aggregated.len(), 5);
    }
}
