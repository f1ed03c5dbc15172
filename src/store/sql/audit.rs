//! AuditStore: the audit trail and per-client usage counters. Admin events are written by the
//! other aggregates' writes, inside their transactions, through `insert_audit`.

/// Records an event; an aggregated one recorded again adds to its count.
pub(crate) const UPSERT_AUDIT: &str = "INSERT INTO audit_events (event_id, time_us, tenant, \
    client_id, actor, source_address, kind, details, count) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
    ON CONFLICT (event_id) DO UPDATE SET count = audit_events.count + excluded.count";

/// Adds a day's usage increments to what is stored.
pub(crate) const ADD_USAGE: &str = "INSERT INTO client_usage (client_id, day, tokens_issued, \
    refreshes, refused_address, refused_rate_limit, refused_lockout, refused_bad_secret, \
    introspections_active, introspections_inactive, api_calls_allowed, api_calls_throttled) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
    ON CONFLICT (client_id, day) DO UPDATE SET \
    tokens_issued = client_usage.tokens_issued + excluded.tokens_issued, \
    refreshes = client_usage.refreshes + excluded.refreshes, \
    refused_address = client_usage.refused_address + excluded.refused_address, \
    refused_rate_limit = client_usage.refused_rate_limit + excluded.refused_rate_limit, \
    refused_lockout = client_usage.refused_lockout + excluded.refused_lockout, \
    refused_bad_secret = client_usage.refused_bad_secret + excluded.refused_bad_secret, \
    introspections_active = client_usage.introspections_active + excluded.introspections_active, \
    introspections_inactive = \
    client_usage.introspections_inactive + excluded.introspections_inactive, \
    api_calls_allowed = client_usage.api_calls_allowed + excluded.api_calls_allowed, \
    api_calls_throttled = client_usage.api_calls_throttled + excluded.api_calls_throttled";

pub(crate) const CLIENT_USAGE: &str = "SELECT * FROM client_usage \
    WHERE client_id = $1 AND day >= $2 ORDER BY day DESC";

/// Adds a day's authentications by one method to what is stored.
pub(crate) const ADD_USAGE_METHOD: &str = "INSERT INTO client_usage_methods \
    (client_id, day, method, count) VALUES ($1, $2, $3, $4) \
    ON CONFLICT (client_id, day, method) DO UPDATE SET \
    count = client_usage_methods.count + excluded.count";

pub(crate) const CLIENT_USAGE_METHODS: &str = "SELECT day, method, count \
    FROM client_usage_methods WHERE client_id = $1 AND day >= $2";

pub(crate) const LAST_USE: &str =
    "SELECT last_used_time_us, last_used_address FROM clients WHERE client_id = $1";

pub(crate) const PURGE_AUDIT: &str = "DELETE FROM audit_events WHERE time_us < $1";
pub(crate) const PURGE_USAGE: &str = "DELETE FROM client_usage WHERE day < $1";
pub(crate) const PURGE_USAGE_METHODS: &str = "DELETE FROM client_usage_methods WHERE day < $1";

/// A page of events, newest first. `$1` tenant, `$2` client, `$3`/`$4` the time range, `$5`/`$6`
/// the last event of the previous page (time, id), `$7` the page size (NULL: no filter); the
/// kinds filter is appended by `list_audit_sql` as `$8`, `$9`, ...
const LIST_AUDIT_HEAD: &str = "SELECT * FROM audit_events \
    WHERE ($1 IS NULL OR tenant = $1) AND ($2 IS NULL OR client_id = $2) \
    AND ($3 IS NULL OR time_us >= $3) AND ($4 IS NULL OR time_us < $4) \
    AND ($5 IS NULL OR time_us < $5 OR (time_us = $5 AND event_id < $6))";

/// The listing statement for `kinds` kinds: only placeholders are added to the text, never a
/// value.
pub(crate) fn list_audit_sql(kinds: usize) -> String {
    let mut sql = String::from(LIST_AUDIT_HEAD);
    if kinds > 0 {
        let marks: Vec<String> = (0..kinds).map(|i| format!("${}", i + 8)).collect();
        sql.push_str(&format!(" AND kind IN ({})", marks.join(", ")));
    }
    sql.push_str(" ORDER BY time_us DESC, event_id DESC LIMIT $7");
    sql
}

/// Implements `AuditStore` for a store type with a `pool` field, and generates
/// `insert_audit`, which the other aggregates' writes call inside their transactions.
macro_rules! audit_store_impl {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::AuditStore for $store {
            async fn record_audit(
                &self,
                events: &[$crate::domain::AuditEvent],
            ) -> $crate::store::StoreResult<()> {
                if events.is_empty() {
                    return Ok(());
                }
                let mut tx = self.begin().await?;
                insert_audit(&mut tx, events).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_audit_events(
                &self,
                filter: &$crate::store::AuditFilter,
                limit: u32,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::AuditEvent>> {
                let sql = $crate::store::sql::list_audit_sql(filter.kinds.len());
                let (before_us, before_id) = match &filter.before {
                    Some((t, id)) => (Some(*t), Some(id.as_str())),
                    None => (None, None),
                };
                let mut query =
                    sqlx::query_as::<_, $crate::store::rows::AuditRow>(sqlx::AssertSqlSafe(sql))
                        .bind(filter.tenant.as_deref())
                        .bind(filter.client_id.as_deref())
                        .bind(filter.start_us)
                        .bind(filter.end_us)
                        .bind(before_us)
                        .bind(before_id)
                        .bind(i64::from(limit));
                for kind in &filter.kinds {
                    query = query.bind(kind.as_str());
                }
                let rows = query.fetch_all(&mut *self.conn().await?).await?;
                rows.into_iter()
                    .map($crate::domain::AuditEvent::try_from)
                    .collect()
            }

            async fn add_usage(
                &self,
                rows: &[$crate::domain::audit::UsageCounts],
            ) -> $crate::store::StoreResult<()> {
                if rows.is_empty() {
                    return Ok(());
                }
                let mut tx = self.begin().await?;
                for r in rows {
                    sqlx::query($crate::store::sql::ADD_USAGE)
                        .bind(&r.client_id)
                        .bind(r.day)
                        .bind(r.tokens_issued)
                        .bind(r.refreshes)
                        .bind(r.refused_address)
                        .bind(r.refused_rate_limit)
                        .bind(r.refused_lockout)
                        .bind(r.refused_bad_secret)
                        .bind(r.introspections_active)
                        .bind(r.introspections_inactive)
                        .bind(r.api_calls_allowed)
                        .bind(r.api_calls_throttled)
                        .execute(&mut *tx)
                        .await?;
                    for (method, count) in &r.authentications {
                        sqlx::query($crate::store::sql::ADD_USAGE_METHOD)
                            .bind(&r.client_id)
                            .bind(r.day)
                            .bind(method)
                            .bind(*count)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn client_usage(
                &self,
                client_id: &str,
                from_day: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::audit::UsageCounts>> {
                let mut conn = self.conn().await?;
                let rows: Vec<$crate::store::usage_rows::UsageRow> =
                    sqlx::query_as($crate::store::sql::CLIENT_USAGE)
                        .bind(client_id)
                        .bind(from_day)
                        .fetch_all(&mut *conn)
                        .await?;
                let methods: Vec<(i64, String, i64)> =
                    sqlx::query_as($crate::store::sql::CLIENT_USAGE_METHODS)
                        .bind(client_id)
                        .bind(from_day)
                        .fetch_all(&mut *conn)
                        .await?;
                Ok($crate::store::usage_rows::usage_with_methods(rows, methods))
            }

            async fn last_use(
                &self,
                client_id: &str,
            ) -> $crate::store::StoreResult<Option<(Option<i64>, Option<String>)>> {
                Ok(sqlx::query_as($crate::store::sql::LAST_USE)
                    .bind(client_id)
                    .fetch_optional(&mut *self.conn().await?)
                    .await?)
            }

            async fn purge_audit(
                &self,
                before_us: i64,
                before_day: i64,
            ) -> $crate::store::StoreResult<u64> {
                let events = sqlx::query($crate::store::sql::PURGE_AUDIT)
                    .bind(before_us)
                    .execute(&mut *self.conn().await?)
                    .await?
                    .rows_affected();
                let days = sqlx::query($crate::store::sql::PURGE_USAGE)
                    .bind(before_day)
                    .execute(&mut *self.conn().await?)
                    .await?
                    .rows_affected();
                sqlx::query($crate::store::sql::PURGE_USAGE_METHODS)
                    .bind(before_day)
                    .execute(&mut *self.conn().await?)
                    .await?;
                Ok(events + days)
            }
        }

        /// Records audit events inside `tx`: an admin change and its event commit together.
        async fn insert_audit(
            tx: &mut sqlx::Transaction<'_, <$store as $crate::store::sql::HasDb>::Db>,
            events: &[$crate::domain::AuditEvent],
        ) -> $crate::store::StoreResult<()> {
            for e in events {
                let e = $crate::store::rows::AuditRow::from(e);
                sqlx::query($crate::store::sql::UPSERT_AUDIT)
                    .bind(&e.event_id)
                    .bind(e.time_us)
                    .bind(&e.tenant)
                    .bind(&e.client_id)
                    .bind(&e.actor)
                    .bind(&e.source_address)
                    .bind(&e.kind)
                    .bind(sqlx::types::Json(&e.details))
                    .bind(e.count)
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
        }
    };
}

pub(crate) use audit_store_impl;
