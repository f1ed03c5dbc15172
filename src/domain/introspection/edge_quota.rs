//! The edge's API quotas: a request that would pass is counted against its client's
//! `api_rate_limit_per_minute` and its route rule's `requests_per_minute` (`policy::api_quota`,
//! in memory, shared across replicas). What passes and what is throttled is counted in the
//! client's usage per day; a throttled call also in one aggregated audit event per client and
//! minute (`api_refused_rate_limit`), and in Prometheus.

use std::net::IpAddr;

use super::edge::EdgeVerdict;
use super::introspector::{ActiveToken, Introspector};
use crate::domain::audit::AuditKind;
use crate::domain::audit::usage::{Counter, Refusal};
use crate::domain::clock::to_micros;
use crate::domain::policy::{ApiCall, RouteQuota};

impl Introspector {
    /// The verdict on a request that passes every rule, once its quotas are counted. `source`:
    /// the caller's address, for the audit event.
    pub(super) fn metered(
        &self,
        active: ActiveToken,
        route: Option<&RouteQuota>,
        source: Option<IpAddr>,
    ) -> EdgeVerdict {
        let now_us = to_micros(self.clock.now());
        let client = &active.client;
        match self.policy.take_api_call(client, route, now_us) {
            ApiCall::Allowed(report) => {
                self.usage
                    .count(client.id.as_str(), Counter::ApiCallsAllowed, now_us);
                EdgeVerdict::Allow(active, report)
            }
            ApiCall::Throttled(throttled) => {
                tracing::debug!(
                    quota = throttled.by,
                    "edge request throttled: over an API quota"
                );
                let refusal = Refusal {
                    kind: AuditKind::ApiRefusedRateLimit,
                    client: Some((client.id.as_str(), client.tenant.as_str())),
                    address: source,
                    detail: Some(("quota", throttled.by)),
                };
                self.usage.refused(&refusal, now_us);
                self.stats.edge_throttled.inc();
                EdgeVerdict::Throttled(throttled)
            }
        }
    }
}
