//! `tokend.v1.AuditService`: the audit trail and per-client usage.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::caller;
use super::convert;
use super::error::{invalid, to_status};
use crate::domain::audit::{AuditQuery, ClientUsage};
use crate::domain::{AuditEvent, AuditKind, Tokend};
use crate::proto::audit_service_server::AuditService;
use crate::proto::*;

/// Serves `AuditService`.
pub struct AuditApi {
    pub tokend: Arc<Tokend>,
}

const WHAT: &str = "AuditService";

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_events(
        &self,
        request: Request<ListAuditEventsRequest>,
    ) -> Result<Response<ListAuditEventsResponse>, Status> {
        let caller = caller(&self.tokend, &request, WHAT).await?;
        let r = request.into_inner();
        let query = AuditQuery {
            client_id: r.client_id,
            kinds: kinds(&r.kinds)?,
            start: convert::time("start_time", r.start_time)?,
            end: convert::time("end_time", r.end_time)?,
            page_size: r.page_size,
            page_token: r.page_token,
        };
        let page = self
            .tokend
            .audit
            .list(&caller, &query)
            .await
            .map_err(to_status)?;
        Ok(Response::new(ListAuditEventsResponse {
            events: page.events.into_iter().map(event).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_client_usage(
        &self,
        request: Request<GetClientUsageRequest>,
    ) -> Result<Response<GetClientUsageResponse>, Status> {
        let caller = caller(&self.tokend, &request, WHAT).await?;
        let r = request.into_inner();
        let usage = self
            .tokend
            .audit
            .usage(&caller, &r.client_id, r.days)
            .await
            .map_err(to_status)?;
        Ok(Response::new(usage_response(usage)))
    }
}

/// The kinds filter: every value must name a kind.
fn kinds(raw: &[i32]) -> Result<Vec<AuditKind>, Status> {
    raw.iter()
        .enumerate()
        .map(|(i, k)| {
            let known = AuditEventKind::try_from(*k)
                .ok()
                .and_then(|k| AuditKind::ALL.get((k as usize).checked_sub(1)?).copied());
            known.ok_or_else(|| {
                invalid(
                    &format!("kinds[{i}]"),
                    format!("{k} is not an audit event kind"),
                )
            })
        })
        .collect()
}

fn event(e: AuditEvent) -> crate::proto::AuditEvent {
    // The proto's numbering is `AuditKind::ALL`'s order, from 1.
    let kind = AuditKind::ALL
        .iter()
        .position(|k| *k == e.kind)
        .map_or(0, |i| i as i32 + 1);
    crate::proto::AuditEvent {
        event_id: e.event_id,
        time: Some(convert::timestamp(e.time)),
        tenant: e.tenant,
        client_id: e.client_id,
        actor: e.actor,
        source_address: e.source_address.map(|a| a.to_string()).unwrap_or_default(),
        kind,
        details: e.details.into_iter().collect(),
        count: e.count,
    }
}

fn usage_response(u: ClientUsage) -> GetClientUsageResponse {
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    GetClientUsageResponse {
        client_id: u.client_id,
        days: u
            .days
            .into_iter()
            .map(|d| DailyUsage {
                date: d.date.to_string(),
                tokens_issued: n(d.counts.tokens_issued),
                refreshes: n(d.counts.refreshes),
                refused_address: n(d.counts.refused_address),
                refused_rate_limit: n(d.counts.refused_rate_limit),
                refused_lockout: n(d.counts.refused_lockout),
                refused_bad_secret: n(d.counts.refused_bad_secret),
                introspections_active: n(d.counts.introspections_active),
                introspections_inactive: n(d.counts.introspections_inactive),
                api_calls_allowed: n(d.counts.api_calls_allowed),
                api_calls_throttled: n(d.counts.api_calls_throttled),
                authentications: d
                    .counts
                    .authentications
                    .iter()
                    .map(|(method, count)| (method.clone(), n(*count)))
                    .collect(),
            })
            .collect(),
        last_used_time: u.last_used_time.map(convert::timestamp),
        last_used_address: u.last_used_address.unwrap_or_default(),
    }
}
