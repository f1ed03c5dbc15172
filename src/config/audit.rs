//! `[audit]`: how long the audit trail and per-client usage are kept.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// `[audit]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// Days audit events and per-client usage are kept (1-3650); older ones are purged.
    pub retention_days: u32,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self { retention_days: 90 }
    }
}

/// `[audit]`, checked.
#[derive(Debug, Clone, Copy)]
pub struct AuditConfig {
    /// Audit events and usage older than this are purged.
    pub retention: Duration,
}

impl AuditSettings {
    pub(super) fn resolve(&self) -> Result<AuditConfig, ConfigError> {
        if !(1..=3650).contains(&self.retention_days) {
            return Err(ConfigError(
                "audit.retention_days must be between 1 and 3650".into(),
            ));
        }
        Ok(AuditConfig {
            retention: Duration::from_secs(u64::from(self.retention_days) * 86_400),
        })
    }
}
