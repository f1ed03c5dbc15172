//! The client aggregate: a registered machine identity and the policy its tokens follow
//! (`ClientSpec`, see `spec`). The store converts it to and from its row.

use time::OffsetDateTime;

use super::spec::ClientSpec;
use crate::domain::ids::{ClientId, TenantId};

/// A registered client.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub id: ClientId,
    pub tenant: TenantId,
    pub spec: ClientSpec,
    pub create_time: OffsetDateTime,
    pub update_time: OffsetDateTime,
    pub last_used_time: Option<OffsetDateTime>,
    /// Optimistic-concurrency token, bumped by every update.
    pub revision: i64,
    /// Access tokens issued under an older generation are inactive.
    pub token_generation: i64,
}
