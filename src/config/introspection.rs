//! `[introspection]`: whether callers of `Introspect` must prove who they are, and how many
//! verified tokens a replica remembers. Both fields are typed as they are read; the section's
//! one rule involves `[server.tls]`.

use serde::Deserialize;

use super::ConfigError;
use super::tls::TlsConfig;

/// `[introspection]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntrospectionSettings {
    /// Require a caller token with scope `tokend.introspect` (RFC 7662 section 2.1). Turn off
    /// only where the network (e.g. an mTLS mesh) already restricts who can call.
    pub require_auth: bool,
    /// How many verified tokens each replica keeps, so a token's signature (or an opaque
    /// token's database row) is checked once, not on every call. Revocation still counts at
    /// once: it is checked on every call. 0 turns the cache off.
    pub cache_entries: usize,
}

impl Default for IntrospectionSettings {
    fn default() -> Self {
        Self {
            require_auth: true,
            cache_entries: 100_000,
        }
    }
}

impl IntrospectionSettings {
    /// Open introspection only behind required client certificates: otherwise anyone who
    /// reaches the port could read every token's claims.
    pub(super) fn check(&self, tls: Option<&TlsConfig>) -> Result<(), ConfigError> {
        if !self.require_auth && !tls.is_some_and(TlsConfig::requires_client_certificates) {
            return Err(ConfigError(
                "introspection.require_auth = false lets anyone who reaches the port introspect; \
                 it is allowed only with client certificates required (server.tls.client_ca_file, \
                 server.tls.client_auth = \"required\")"
                    .into(),
            ));
        }
        Ok(())
    }
}
