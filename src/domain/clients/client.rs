//! The client aggregate: a registered machine identity and the policy its tokens follow
//! (`ClientSpec`, see `spec`), with the conversion to and from the row the store keeps.

use std::time::Duration;

use time::OffsetDateTime;

use super::spec::{ClientInput, ClientSpec, TokenFormat};
use crate::domain::clock::{from_micros, to_micros};
use crate::domain::error::{Error, Result};
use crate::domain::ids::{ClientId, TenantId};
use crate::store::ClientRow;

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

impl Client {
    /// The row the store keeps.
    pub fn to_row(&self) -> ClientRow {
        let s = &self.spec;
        ClientRow {
            client_id: self.id.as_str().to_owned(),
            tenant: self.tenant.as_str().to_owned(),
            name: s.name.clone(),
            description: s.description.clone(),
            scopes: s.scopes.to_strings(),
            audiences: s.audiences.iter().cloned().collect(),
            roles: s.roles.iter().cloned().collect(),
            access_token_ttl_secs: secs(s.access_token_ttl),
            refresh_token_ttl_secs: secs(s.refresh_token_ttl),
            active: s.active,
            allowed_cidrs: s.allowed_cidrs.iter().map(ToString::to_string).collect(),
            rate_limit_per_minute: i64::from(s.rate_limit_per_minute),
            metadata: s.metadata.clone(),
            access_token_format: s.access_token_format.as_str().to_owned(),
            exchange_audiences: s.exchange_audiences.iter().cloned().collect(),
            create_time_us: to_micros(self.create_time),
            update_time_us: to_micros(self.update_time),
            last_used_time_us: self.last_used_time.map(to_micros),
            revision: self.revision,
            token_generation: self.token_generation,
        }
    }

    /// Parses a stored row. A row that does not parse is corrupt: an `Unexpected` error.
    pub fn from_row(row: ClientRow) -> Result<Self> {
        let corrupt = |e: Error| {
            Error::Unexpected(anyhow::anyhow!(
                "stored client {} is corrupt: {e}",
                row.client_id
            ))
        };
        let input = ClientInput {
            tenant: row.tenant.clone(),
            name: row.name.clone(),
            description: row.description.clone(),
            scopes: row.scopes.clone(),
            audiences: row.audiences.clone(),
            roles: row.roles.clone(),
            access_token_ttl: Some(Duration::from_secs(row.access_token_ttl_secs.max(0) as u64)),
            refresh_token_ttl: Some(Duration::from_secs(row.refresh_token_ttl_secs.max(0) as u64)),
            active: Some(row.active),
            allowed_cidrs: row.allowed_cidrs.clone(),
            rate_limit_per_minute: u32::try_from(row.rate_limit_per_minute).unwrap_or(u32::MAX),
            metadata: row.metadata.clone(),
            access_token_format: Some(
                TokenFormat::parse_stored(&row.access_token_format).ok_or_else(|| {
                    Error::Unexpected(anyhow::anyhow!(
                        "stored client {} has unknown token format {:?}",
                        row.client_id,
                        row.access_token_format
                    ))
                })?,
            ),
            exchange_audiences: row.exchange_audiences.clone(),
        };
        Ok(Self {
            id: ClientId::parse("client_id", &row.client_id).map_err(corrupt)?,
            tenant: TenantId::parse("tenant", &row.tenant).map_err(corrupt)?,
            spec: ClientSpec::from_input(&input).map_err(corrupt)?,
            create_time: from_micros(row.create_time_us),
            update_time: from_micros(row.update_time_us),
            last_used_time: row.last_used_time_us.map(from_micros),
            revision: row.revision,
            token_generation: row.token_generation,
        })
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
