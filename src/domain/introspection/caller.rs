//! Who is calling tokend's own RPCs: a client proven by a bearer token (or, over HTTP
//! introspection, by its own credentials), or the operator at the command line. Every admin
//! service checks its scopes and tenant here; the audit trail records it.

use std::net::IpAddr;

use crate::domain::error::{Error, Result};
use crate::domain::ids::TenantId;
use crate::domain::scope::ScopeSet;

/// The operator's pseudo client id (never a UUID, so never a real client's).
const OPERATOR: &str = "operator";

/// Who is calling, as proven by a bearer token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub client_id: String,
    pub tenant: TenantId,
    pub scopes: ScopeSet,
    /// Where the call came from, as the front end determined it; for the audit trail.
    pub address: Option<IpAddr>,
}

impl Caller {
    /// The operator at the command line: direct database access is already full power.
    pub fn operator() -> Self {
        Self {
            client_id: OPERATOR.into(),
            tenant: TenantId::system(),
            scopes: ScopeSet::parse("scopes", &[crate::domain::scope::ADMIN_SCOPE])
                .unwrap_or_default(),
            address: None,
        }
    }

    /// Whether this is the operator at the command line rather than a client.
    pub fn is_operator(&self) -> bool {
        self.client_id == OPERATOR && self.tenant.is_system()
    }

    /// Fails with PermissionDenied unless the caller holds `scope` (by exact name).
    pub fn require_scope(&self, scope: &str) -> Result<()> {
        if self.scopes.contains_exact(scope) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "the caller's token lacks scope {scope}"
            )))
        }
    }

    /// Whether the caller may see objects of `tenant`.
    pub fn sees_tenant(&self, tenant: &TenantId) -> bool {
        self.tenant.is_system() || &self.tenant == tenant
    }

    /// [`Caller::sees_tenant`] for a tenant named in a token's claims, not yet parsed.
    pub fn sees_tenant_named(&self, tenant: &str) -> bool {
        self.tenant.is_system() || self.tenant.as_str() == tenant
    }
}
