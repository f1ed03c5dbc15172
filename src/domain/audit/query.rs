//! Reading the trail: `ListAuditEvents` and `GetClientUsage`, with ClientService's caller rules
//! (scope `tokend.admin`, the caller's tenant, `system` sees all).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::usage::UsageCounts;
use super::usage::add_counts;
use super::{AuditEvent, AuditKind, UsageRecorder};
use crate::domain::clients::Client;
use crate::domain::clock::{Clock, from_micros, to_micros};
use crate::domain::error::{Error, Result};
use crate::domain::ids::ClientId;
use crate::domain::introspection::caller::Caller;
use crate::domain::page_token;
use crate::domain::scope::ADMIN_SCOPE;
use crate::store::{AuditFilter, Store};

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;
const DEFAULT_DAYS: u32 = 30;
const DAY_US: i64 = 24 * 3600 * 1_000_000;

/// What `ListAuditEvents` asks for.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub client_id: String,
    pub kinds: Vec<AuditKind>,
    pub start: Option<OffsetDateTime>,
    pub end: Option<OffsetDateTime>,
    pub page_size: i32,
    pub page_token: String,
}

/// A page of events, newest first, and the token for the next (empty on the last page).
#[derive(Debug)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub next_page_token: String,
}

/// One day of a client's usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyUsage {
    pub date: time::Date,
    pub counts: UsageCounts,
}

/// A client's usage, newest day first.
#[derive(Debug, Clone)]
pub struct ClientUsage {
    pub client_id: String,
    pub days: Vec<DailyUsage>,
    pub last_used_time: Option<OffsetDateTime>,
    pub last_used_address: Option<String>,
}

/// Answers audit queries.
pub struct AuditAdmin {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) usage: Arc<UsageRecorder>,
    pub(crate) clock: Arc<dyn Clock>,
    /// How far back events and usage are kept.
    pub(crate) retention: Duration,
}

impl AuditAdmin {
    /// A page of the events the caller may see, newest first.
    pub async fn list(&self, caller: &Caller, query: &AuditQuery) -> Result<AuditPage> {
        caller.require_scope(ADMIN_SCOPE)?;
        let client_id = match query.client_id.as_str() {
            "" => None,
            raw => Some(Self::trail_of(raw)?),
        };
        if let (Some(start), Some(end)) = (query.start, query.end)
            && end <= start
        {
            return Err(Error::invalid("end_time", "must be after start_time"));
        }
        let limit = match query.page_size {
            0 => DEFAULT_PAGE,
            n if n < 0 => return Err(Error::invalid("page_size", "must not be negative")),
            n => u32::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE),
        };
        let mut filter = AuditFilter {
            tenant: (!caller.tenant.is_system()).then(|| caller.tenant.to_string()),
            client_id,
            kinds: query.kinds.iter().map(|k| k.as_str().to_owned()).collect(),
            start_us: query.start.map(to_micros),
            end_us: query.end.map(to_micros),
            before: None,
        };
        let fingerprint = fingerprint(&filter);
        filter.before = decode_token(&query.page_token, &fingerprint)?;
        let rows = self.store.list_audit_events(&filter, limit + 1).await?;
        let more = rows.len() > limit as usize;
        let mut events = rows;
        events.truncate(limit as usize);
        let next_page_token = match events.last() {
            Some(last) if more => encode_token(&fingerprint, to_micros(last.time), &last.event_id),
            _ => String::new(),
        };
        Ok(AuditPage {
            events,
            next_page_token,
        })
    }

    /// A client's usage for the last `days` UTC days (today included): what is stored plus
    /// what this replica has counted and not yet written.
    pub async fn usage(&self, caller: &Caller, client_id: &str, days: i32) -> Result<ClientUsage> {
        caller.require_scope(ADMIN_SCOPE)?;
        let client = self.visible_client(caller, client_id).await?;
        let max_days = u32::try_from(self.retention.as_secs() / 86_400)
            .unwrap_or(u32::MAX)
            .max(1);
        let days = match days {
            0 => DEFAULT_DAYS.min(max_days),
            n if n < 0 => return Err(Error::invalid("days", "must not be negative")),
            n => {
                let n = u32::try_from(n).unwrap_or(u32::MAX);
                if n > max_days {
                    return Err(Error::invalid(
                        "days",
                        format!("must be at most {max_days} (audit.retention_days)"),
                    ));
                }
                n
            }
        };
        let today = to_micros(self.clock.now()).div_euclid(DAY_US);
        let from_day = today - i64::from(days) + 1;
        let id = client.id.to_string();
        // No flush may move counts from memory to the store while both are read.
        let _settled = self.usage.settled().await;
        let mut rows = self.store.client_usage(&id, from_day).await?;
        for pending in self.usage.pending_days(&id) {
            if pending.day < from_day {
                continue;
            }
            match rows.iter_mut().find(|r| r.day == pending.day) {
                Some(row) => add_counts(row, &pending),
                None => rows.push(pending),
            }
        }
        rows.sort_by_key(|r| std::cmp::Reverse(r.day));
        let stored = self.store.last_use(&id).await?.unwrap_or((None, None));
        let pending = self.usage.pending_last_use(&client.id);
        let (last_us, last_address) = latest_use(stored, pending);
        Ok(ClientUsage {
            client_id: id,
            days: rows
                .into_iter()
                .map(|counts| DailyUsage {
                    date: from_micros(counts.day * DAY_US).date(),
                    counts,
                })
                .collect(),
            last_used_time: last_us.map(from_micros),
            last_used_address: last_address,
        })
    }

    /// The client id whose trail the caller asks for. The trail outlives the client, so the
    /// client is not looked up: the tenant filter bounds what comes back, and another
    /// tenant's client, live or deleted, simply has no events here (an answer that says
    /// nothing about whether it exists).
    fn trail_of(raw: &str) -> Result<String> {
        Ok(ClientId::parse("client_id", raw)?.to_string())
    }

    async fn visible_client(&self, caller: &Caller, raw: &str) -> Result<Client> {
        let id = ClientId::parse("client_id", raw)?;
        let not_found = || Error::NotFound(format!("client {id} not found"));
        let client = self
            .store
            .get_client(id.as_str())
            .await?
            .ok_or_else(not_found)?;
        if caller.sees_tenant(&client.tenant) {
            Ok(client)
        } else {
            Err(not_found())
        }
    }
}

/// What a page token is bound to: every filter, so a token cannot be replayed with others.
fn fingerprint(f: &AuditFilter) -> String {
    format!(
        "{}|{}|{}|{:?}|{:?}",
        f.tenant.as_deref().unwrap_or("*"),
        f.client_id.as_deref().unwrap_or("*"),
        f.kinds.join(","),
        f.start_us,
        f.end_us
    )
}

fn encode_token(fingerprint: &str, time_us: i64, event_id: &str) -> String {
    page_token::encode(fingerprint, &format!("{time_us}\n{event_id}"))
}

fn decode_token(token: &str, fingerprint: &str) -> Result<Option<(i64, String)>> {
    let Some(cursor) = page_token::decode(token, fingerprint)? else {
        return Ok(None);
    };
    let (time, id) = cursor.split_once('\n').ok_or_else(page_token::malformed)?;
    let time = time.parse().map_err(|_| page_token::malformed())?;
    Ok(Some((time, id.to_owned())))
}

/// The later of the stored last use and the one this replica noted and has not yet written
/// (a use seen here shows at once, not only after the next batch write; another replica's
/// unwritten use shows after its flush).
fn latest_use(
    stored: (Option<i64>, Option<String>),
    pending: Option<(i64, Option<IpAddr>)>,
) -> (Option<i64>, Option<String>) {
    match pending {
        Some((noted, address)) if stored.0.is_none_or(|at| at < noted) => {
            (Some(noted), address.map(|a| a.to_string()))
        }
        _ => stored,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn page_tokens_round_trip_and_bind_their_filters() {
        let f = AuditFilter {
            kinds: vec!["client_created".into()],
            ..AuditFilter::default()
        };
        let fp = fingerprint(&f);
        let token = encode_token(&fp, 42, "abc");
        assert_eq!(decode_token(&token, &fp).unwrap(), Some((42, "abc".into())));
        let other = fingerprint(&AuditFilter::default());
        let err = decode_token(&token, &other).unwrap_err();
        assert!(err.to_string().contains("different filters"), "{err}");
        assert!(decode_token("!!", &fp).is_err());
        assert_eq!(decode_token("", &fp).unwrap(), None);
    }

    #[test]
    fn the_later_of_stored_and_pending_last_use_wins() {
        let here = Some("10.0.0.1".parse::<IpAddr>().unwrap());
        let stored = (Some(20), Some("10.0.0.9".to_owned()));
        assert_eq!(latest_use(stored.clone(), None), stored);
        assert_eq!(latest_use(stored.clone(), Some((10, here))), stored);
        assert_eq!(
            latest_use(stored, Some((30, here))),
            (Some(30), Some("10.0.0.1".to_owned()))
        );
        assert_eq!(latest_use((None, None), Some((5, None))), (Some(5), None));
    }

    proptest! {
        #[test]
        fn arbitrary_page_tokens_never_panic(raw in any::<String>()) {
            let _ = decode_token(&raw, "x");
        }

        #[test]
        fn page_tokens_round_trip(time in any::<i64>(), id in "[a-z0-9-]{0,40}") {
            let token = encode_token("fp", time, &id);
            prop_assert_eq!(decode_token(&token, "fp").unwrap(), Some((time, id)));
        }
    }
}
