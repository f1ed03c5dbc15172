//! What clients do, counted in memory and written in batches: last use (time and address), the
//! usage counters per client and UTC day, and the refusals (token endpoint, API quotas at the
//! edge) as one audit event per client, kind and minute. The hot paths only touch memory; a background task writes
//! everything once per flush interval (`tokens.last_used_flush_secs`) and on a graceful stop.
//!
//! What a crash may lose: what was counted since the previous flush (at most one interval, 10 s
//! by default). Nothing depends on these figures; they inform operators.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::{AuditEvent, AuditKind};
use crate::domain::clock::from_micros;
use crate::domain::ids::ClientId;
use crate::store::Store;

const DAY_US: i64 = 24 * 3600 * 1_000_000;
const MINUTE_US: i64 = 60 * 1_000_000;
/// Most distinct refusal events held between two flushes; past it, refusals are still counted
/// per client but not as new events (a flood of random client ids must not fill memory).
const MAX_PENDING_REFUSALS: usize = 10_000;

/// Usage counters of one client on one UTC day (`day`: days since the Unix epoch). Written as
/// increments: recording one adds its counts to the stored ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageCounts {
    pub client_id: String,
    pub day: i64,
    pub tokens_issued: i64,
    pub refreshes: i64,
    pub refused_address: i64,
    pub refused_rate_limit: i64,
    pub refused_lockout: i64,
    pub refused_bad_secret: i64,
    pub introspections_active: i64,
    pub introspections_inactive: i64,
    /// API calls through the edge (ext_authz `Check`) that passed.
    pub api_calls_allowed: i64,
    /// API calls through the edge refused over an API quota.
    pub api_calls_throttled: i64,
    /// Successful client authentications by method (`client_secret`, `private_key_jwt`,
    /// `federated_jwt`, ...).
    pub authentications: BTreeMap<String, i64>,
}

/// A counter of [`UsageCounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    TokensIssued,
    Refreshes,
    RefusedAddress,
    RefusedRateLimit,
    RefusedLockout,
    RefusedBadSecret,
    IntrospectionsActive,
    IntrospectionsInactive,
    ApiCallsAllowed,
    ApiCallsThrottled,
}

/// A refusal at the token endpoint or the edge, for the aggregated audit event.
#[derive(Debug, Clone)]
pub struct Refusal<'a> {
    pub kind: AuditKind,
    /// The client, if the client_id named one that exists.
    pub client: Option<(&'a str, &'a str)>,
    pub address: Option<IpAddr>,
    /// A detail of the first refusal of its minute (e.g. which rate limit).
    pub detail: Option<(&'static str, &'static str)>,
}

/// The id of a refusal's aggregated event: one event per client, kind and minute across
/// replicas (the store adds the counts of the same id), and per rate limit, so a refresh
/// refused by `refresh_rate_limit_per_minute` is not counted under the token limit's event.
/// The client's token limit (`limit=client`) keeps the id it had before the limits split.
fn refusal_id(refusal: &Refusal<'_>, minute: i64) -> String {
    let client_id = refusal.client.map_or("unknown", |(id, _)| id);
    let mut id = format!("{minute:012}-{}-{client_id}", refusal.kind.as_str());
    if let Some(("limit", limit)) = refusal.detail
        && limit != "client"
    {
        id.push('-');
        id.push_str(limit);
    }
    id
}

#[derive(Default)]
struct Pending {
    /// client id -> (last use, its address)
    last_use: HashMap<ClientId, (i64, Option<IpAddr>)>,
    /// client id -> day -> counts
    days: HashMap<String, HashMap<i64, UsageCounts>>,
    /// event id (see [`refusal_id`]) -> the aggregated event
    refusals: HashMap<String, AuditEvent>,
}

/// Usage and refusals not yet written.
#[derive(Default)]
pub struct UsageRecorder {
    pending: Mutex<Pending>,
    /// Held while a flush writes: what it took from `pending` is then in neither place a
    /// reader looks, so readers wait for it (see [`UsageRecorder::settled`]).
    flushing: tokio::sync::Mutex<()>,
}

impl UsageRecorder {
    /// Notes that `client` obtained a token at `at_us` from `address`.
    pub fn record(&self, client: &ClientId, at_us: i64, address: Option<IpAddr>) {
        note_use(&mut self.lock(), client, at_us, address);
    }

    /// [`UsageRecorder::record`] and [`UsageRecorder::count`] under one lock: the token
    /// endpoint's success path.
    pub fn used(&self, client: &ClientId, at_us: i64, address: Option<IpAddr>, counter: Counter) {
        let mut p = self.lock();
        note_use(&mut p, client, at_us, address);
        add_one(&mut p, client.as_str(), counter, at_us);
    }

    /// Adds one to a client's counter for the day of `at_us`.
    pub fn count(&self, client_id: &str, counter: Counter, at_us: i64) {
        add_one(&mut self.lock(), client_id, counter, at_us);
    }

    /// Counts a successful authentication of `client_id` by `method` for the day of `at_us`.
    pub fn authenticated(&self, client_id: &str, method: &'static str, at_us: i64) {
        let mut p = self.lock();
        let row = day_row(&mut p, client_id, at_us);
        match row.authentications.get_mut(method) {
            Some(count) => *count += 1,
            None => {
                row.authentications.insert(method.to_owned(), 1);
            }
        }
    }

    /// Counts a refusal into its minute's audit event, and into the client's usage.
    pub fn refused(&self, refusal: &Refusal<'_>, at_us: i64) {
        if let Some((client_id, _)) = refusal.client {
            let counter = match refusal.kind {
                AuditKind::RefusedAddress => Counter::RefusedAddress,
                AuditKind::RefusedRateLimit => Counter::RefusedRateLimit,
                AuditKind::RefusedLockout => Counter::RefusedLockout,
                AuditKind::ApiRefusedRateLimit => Counter::ApiCallsThrottled,
                _ => Counter::RefusedBadSecret,
            };
            self.count(client_id, counter, at_us);
        }
        let minute = at_us.div_euclid(MINUTE_US);
        let key = refusal_id(refusal, minute);
        let mut p = self.lock();
        if let Some(event) = p.refusals.get_mut(&key) {
            event.count += 1;
            return;
        }
        if p.refusals.len() >= MAX_PENDING_REFUSALS {
            return;
        }
        let mut event = AuditEvent::new(refusal.kind, from_micros(minute * MINUTE_US));
        event.event_id = key.clone();
        if let Some((id, tenant)) = refusal.client {
            event.client_id = id.to_owned();
            event.tenant = tenant.to_owned();
            event.actor = id.to_owned();
        }
        event.source_address = refusal.address;
        if let Some((k, v)) = refusal.detail {
            event.details.insert(k.to_owned(), v.to_owned());
        }
        p.refusals.insert(key, event);
    }

    /// Waits for a flush in progress to finish; while the guard is held none starts, so the
    /// store and [`UsageRecorder::pending_days`] read together count everything once.
    pub async fn settled(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.flushing.lock().await
    }

    /// The counts of `client_id` not yet written, per day.
    pub fn pending_days(&self, client_id: &str) -> Vec<UsageCounts> {
        let p = self.lock();
        p.days
            .get(client_id)
            .map(|d| d.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The last use of `client` this replica noted and has not yet written: time and address.
    pub fn pending_last_use(&self, client: &ClientId) -> Option<(i64, Option<IpAddr>)> {
        self.lock().last_use.get(client).copied()
    }

    /// Writes everything pending; returns how many clients' last uses were written. What
    /// fails to be written is put back for the next flush.
    pub async fn flush(&self, store: &Arc<dyn Store>) -> usize {
        let _flushing = self.flushing.lock().await;
        let batch = std::mem::take(&mut *self.lock());
        let mut written = 0;
        for (client, (at_us, address)) in batch.last_use {
            let text = address.map(|a| a.to_string());
            match store
                .touch_client(client.as_str(), at_us, text.as_deref())
                .await
            {
                Ok(()) => written += 1,
                Err(err) => {
                    tracing::warn!(client_id = %client, error = %err, "could not record last use; will retry");
                    self.record(&client, at_us, address);
                }
            }
        }
        let rows: Vec<UsageCounts> = batch
            .days
            .into_values()
            .flat_map(HashMap::into_values)
            .collect();
        if let Err(err) = store.add_usage(&rows).await {
            tracing::warn!(error = %err, "could not record usage; will retry");
            self.put_back_days(rows);
        }
        let events: Vec<AuditEvent> = batch.refusals.into_values().collect();
        match store.record_audit(&events).await {
            Ok(()) => super::log_all(&events),
            Err(err) => {
                tracing::warn!(error = %err, "could not record refusal events; will retry");
                let mut p = self.lock();
                for e in events {
                    match p.refusals.entry(e.event_id.clone()) {
                        // Counted again meanwhile: add the two.
                        std::collections::hash_map::Entry::Occupied(mut newer) => {
                            newer.get_mut().count += e.count;
                        }
                        std::collections::hash_map::Entry::Vacant(slot) => {
                            slot.insert(e);
                        }
                    }
                }
            }
        }
        written
    }

    /// Number of clients with a last use not yet written.
    pub fn pending(&self) -> usize {
        self.lock().last_use.len()
    }

    fn put_back_days(&self, rows: Vec<UsageCounts>) {
        let mut p = self.lock();
        for r in rows {
            let days = p.days.entry(r.client_id.clone()).or_default();
            let row = days.entry(r.day).or_insert_with(|| UsageCounts {
                client_id: r.client_id.clone(),
                day: r.day,
                ..UsageCounts::default()
            });
            add_counts(row, &r);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Keeps the latest use of `client` and the address it came from.
fn note_use(p: &mut Pending, client: &ClientId, at_us: i64, address: Option<IpAddr>) {
    match p.last_use.get_mut(client) {
        Some(t) if t.0 >= at_us => {}
        Some(t) => *t = (at_us, address),
        None => {
            p.last_use.insert(client.clone(), (at_us, address));
        }
    }
}

/// Adds `more`'s counts to `row`'s (same client and day).
pub(crate) fn add_counts(row: &mut UsageCounts, more: &UsageCounts) {
    row.tokens_issued += more.tokens_issued;
    row.refreshes += more.refreshes;
    row.refused_address += more.refused_address;
    row.refused_rate_limit += more.refused_rate_limit;
    row.refused_lockout += more.refused_lockout;
    row.refused_bad_secret += more.refused_bad_secret;
    row.introspections_active += more.introspections_active;
    row.introspections_inactive += more.introspections_inactive;
    row.api_calls_allowed += more.api_calls_allowed;
    row.api_calls_throttled += more.api_calls_throttled;
    for (method, count) in &more.authentications {
        *row.authentications.entry(method.clone()).or_default() += count;
    }
}

/// The pending counts of `client_id` for the day of `at_us`.
fn day_row<'p>(p: &'p mut Pending, client_id: &str, at_us: i64) -> &'p mut UsageCounts {
    let day = at_us.div_euclid(DAY_US);
    // Looked up before an owned key is made: the hot path finds the client almost always.
    if !p.days.contains_key(client_id) {
        p.days.insert(client_id.to_owned(), HashMap::new());
    }
    let days = p.days.get_mut(client_id).expect("inserted above");
    days.entry(day).or_insert_with(|| UsageCounts {
        client_id: client_id.to_owned(),
        day,
        ..UsageCounts::default()
    })
}

/// One more of `counter` for `client_id` on the day of `at_us`.
fn add_one(p: &mut Pending, client_id: &str, counter: Counter, at_us: i64) {
    let row = day_row(p, client_id, at_us);
    let field = match counter {
        Counter::TokensIssued => &mut row.tokens_issued,
        Counter::Refreshes => &mut row.refreshes,
        Counter::RefusedAddress => &mut row.refused_address,
        Counter::RefusedRateLimit => &mut row.refused_rate_limit,
        Counter::RefusedLockout => &mut row.refused_lockout,
        Counter::RefusedBadSecret => &mut row.refused_bad_secret,
        Counter::IntrospectionsActive => &mut row.introspections_active,
        Counter::IntrospectionsInactive => &mut row.introspections_inactive,
        Counter::ApiCallsAllowed => &mut row.api_calls_allowed,
        Counter::ApiCallsThrottled => &mut row.api_calls_throttled,
    };
    *field += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_use_per_client() {
        let usage = UsageRecorder::default();
        let a = ClientId::generate();
        let b = ClientId::generate();
        usage.record(&a, 5, None);
        usage.record(&a, 3, Some("192.0.2.1".parse().unwrap()));
        usage.record(&b, 1, None);
        assert_eq!(usage.pending(), 2);
        assert_eq!(usage.lock().last_use.get(&a), Some(&(5, None)));
    }

    #[test]
    fn counts_per_day() {
        let usage = UsageRecorder::default();
        usage.count("c", Counter::TokensIssued, 10);
        usage.count("c", Counter::TokensIssued, 20);
        usage.count("c", Counter::IntrospectionsInactive, DAY_US + 1);
        let mut days = usage.pending_days("c");
        days.sort_by_key(|d| d.day);
        assert_eq!(days.len(), 2);
        assert_eq!((days[0].day, days[0].tokens_issued), (0, 2));
        assert_eq!((days[1].day, days[1].introspections_inactive), (1, 1));
        assert!(usage.pending_days("other").is_empty());
    }

    #[test]
    fn refusals_aggregate_per_client_kind_and_minute() {
        let usage = UsageRecorder::default();
        let refusal = Refusal {
            kind: AuditKind::RefusedBadSecret,
            client: Some(("c", "acme")),
            address: None,
            detail: None,
        };
        for i in 0..5 {
            usage.refused(&refusal, i * 1_000_000);
        }
        usage.refused(&refusal, MINUTE_US + 1);
        let unknown = Refusal {
            client: None,
            ..refusal.clone()
        };
        usage.refused(&unknown, 0);
        let p = usage.lock();
        assert_eq!(p.refusals.len(), 3);
        let first = &p.refusals[&refusal_id(&refusal, 0)];
        assert_eq!(first.count, 5);
        assert_eq!(first.tenant, "acme");
        assert_eq!(p.days["c"][&0].refused_bad_secret, 6);
        assert!(
            p.refusals[&refusal_id(&unknown, 0)]
                .event_id
                .ends_with("-unknown")
        );
    }

    #[test]
    fn each_rate_limit_has_its_own_event() {
        let usage = UsageRecorder::default();
        let limited = |limit| Refusal {
            kind: AuditKind::RefusedRateLimit,
            client: Some(("c", "acme")),
            address: None,
            detail: Some(("limit", limit)),
        };
        for limit in ["client", "refresh", "refresh", "address"] {
            usage.refused(&limited(limit), 0);
        }
        let p = usage.lock();
        let counts: BTreeMap<&str, u64> = p
            .refusals
            .values()
            .map(|e| (e.details["limit"].as_str(), e.count))
            .collect();
        assert_eq!(
            counts,
            BTreeMap::from([("address", 1), ("client", 1), ("refresh", 2)])
        );
        assert!(
            p.refusals
                .contains_key("000000000000-token_refused_rate_limit-c")
        );
    }
}
