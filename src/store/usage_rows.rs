//! The usage rows: a client's counts per day (`client_usage`) with its authentications by
//! method (`client_usage_methods`).

use std::collections::BTreeMap;

use crate::domain::audit::UsageCounts;

/// One row of `client_usage`.
#[derive(sqlx::FromRow)]
pub(super) struct UsageRow {
    client_id: String,
    day: i64,
    tokens_issued: i64,
    refreshes: i64,
    refused_address: i64,
    refused_rate_limit: i64,
    refused_lockout: i64,
    refused_bad_secret: i64,
    introspections_active: i64,
    introspections_inactive: i64,
    api_calls_allowed: i64,
    api_calls_throttled: i64,
}

impl From<UsageRow> for UsageCounts {
    fn from(row: UsageRow) -> Self {
        Self {
            client_id: row.client_id,
            day: row.day,
            tokens_issued: row.tokens_issued,
            refreshes: row.refreshes,
            refused_address: row.refused_address,
            refused_rate_limit: row.refused_rate_limit,
            refused_lockout: row.refused_lockout,
            refused_bad_secret: row.refused_bad_secret,
            introspections_active: row.introspections_active,
            introspections_inactive: row.introspections_inactive,
            api_calls_allowed: row.api_calls_allowed,
            api_calls_throttled: row.api_calls_throttled,
            authentications: Default::default(),
        }
    }
}

/// The days of a client's usage with their authentications by method (`(day, method, count)`);
/// a day with authentications but no other counts is a day too. Newest first.
pub(super) fn usage_with_methods(
    rows: Vec<UsageRow>,
    methods: Vec<(i64, String, i64)>,
) -> Vec<UsageCounts> {
    let mut days: BTreeMap<i64, UsageCounts> = rows
        .into_iter()
        .map(|row| (row.day, UsageCounts::from(row)))
        .collect();
    for (day, method, count) in methods {
        let client_id = days
            .values()
            .next()
            .map(|d| d.client_id.clone())
            .unwrap_or_default();
        let entry = days.entry(day).or_insert_with(|| UsageCounts {
            client_id,
            day,
            ..UsageCounts::default()
        });
        entry.authentications.insert(method, count);
    }
    days.into_values().rev().collect()
}
