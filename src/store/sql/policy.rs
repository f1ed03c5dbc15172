//! PolicyStore: replica heartbeats and the lockouts replicas share.

/// Records (or refreshes) one replica's heartbeat.
pub(crate) const UPSERT_REPLICA: &str = "INSERT INTO replicas (replica_id, heartbeat_time_us) \
    VALUES ($1, $2) ON CONFLICT (replica_id) DO UPDATE SET heartbeat_time_us = $2";

/// Forgets replicas that stopped without saying so, long after they stopped counting.
pub(crate) const DELETE_DEAD_REPLICAS: &str = "DELETE FROM replicas WHERE heartbeat_time_us < $1";

pub(crate) const COUNT_LIVE_REPLICAS: &str =
    "SELECT COUNT(*) FROM replicas WHERE heartbeat_time_us > $1";

pub(crate) const DELETE_REPLICA: &str = "DELETE FROM replicas WHERE replica_id = $1";

/// Locks still in force (`$2`: the lockout change kind): read from the change log, which keeps
/// them longer than any lock lasts (locks end within an hour; the log keeps an hour past its
/// newest entries' expiry).
pub(crate) const LIVE_LOCKOUTS: &str = "SELECT * FROM changes \
    WHERE kind = $2 AND expire_time_us > $1 ORDER BY seq";

/// Counts one failure of `$1` at `$2` in a window of `$3` µs: a failure outside the current
/// window starts a new one; strikes are forgiven a day after the last lock ended. Returns the
/// failures in the window and the strikes. (In both databases SET reads the old row.)
pub(crate) const COUNT_FAILURE: &str = "INSERT INTO auth_failures \
    (subject, window_start_us, failures, strikes, locked_until_us) VALUES ($1, $2, 1, 0, 0) \
    ON CONFLICT (subject) DO UPDATE SET \
    failures = CASE WHEN auth_failures.window_start_us + $3 <= $2 THEN 1 \
        ELSE auth_failures.failures + 1 END, \
    window_start_us = CASE WHEN auth_failures.window_start_us + $3 <= $2 THEN $2 \
        ELSE auth_failures.window_start_us END, \
    strikes = CASE WHEN auth_failures.locked_until_us + 86400000000 < $2 THEN 0 \
        ELSE auth_failures.strikes END \
    RETURNING failures, strikes";

/// A lock of `$1` until `$2`: one more strike, and counting starts again when it ends.
pub(crate) const LOCK_SUBJECT: &str = "UPDATE auth_failures SET strikes = strikes + 1, \
    failures = 0, window_start_us = $2, locked_until_us = $2 WHERE subject = $1";

/// Counters with nothing left to say: window over and last lock ended before `$1`.
pub(crate) const PURGE_FAILURES: &str = "DELETE FROM auth_failures \
    WHERE window_start_us < $1 AND locked_until_us < $1";

/// Trusts `$1` at `$2` until `$3`, or keeps a later end already stored.
pub(crate) const TRUST_ADDRESS: &str = "INSERT INTO trusted_addresses (client_id, address, until_us) \
    VALUES ($1, $2, $3) ON CONFLICT (client_id, address) DO UPDATE SET \
    until_us = CASE WHEN trusted_addresses.until_us > $3 THEN trusted_addresses.until_us \
        ELSE $3 END";

pub(crate) const LIVE_TRUST: &str =
    "SELECT client_id, address, until_us FROM trusted_addresses WHERE until_us > $1";

pub(crate) const PURGE_TRUST: &str = "DELETE FROM trusted_addresses WHERE until_us < $1";

/// How long a replica row stays after its last heartbeat before it is deleted.
pub(crate) const DEAD_REPLICA_US: i64 = 24 * 3600 * 1_000_000;

/// Implements `PolicyStore` for a store type with a `pool` field.
macro_rules! policy_store_impl {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::PolicyStore for $store {
            async fn heartbeat(
                &self,
                replica_id: &str,
                now_us: i64,
                live_after_us: i64,
            ) -> $crate::store::StoreResult<u32> {
                use $crate::store::sql as q;
                let mut tx = self.begin().await?;
                sqlx::query(q::DELETE_DEAD_REPLICAS)
                    .bind(now_us.saturating_sub(q::DEAD_REPLICA_US))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(q::UPSERT_REPLICA)
                    .bind(replica_id)
                    .bind(now_us)
                    .execute(&mut *tx)
                    .await?;
                let (live,): (i64,) = sqlx::query_as(q::COUNT_LIVE_REPLICAS)
                    .bind(live_after_us)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(u32::try_from(live).unwrap_or(u32::MAX).max(1))
            }

            async fn leave(&self, replica_id: &str) -> $crate::store::StoreResult<()> {
                sqlx::query($crate::store::sql::DELETE_REPLICA)
                    .bind(replica_id)
                    .execute(&mut *self.conn().await?)
                    .await?;
                Ok(())
            }

            async fn record_lockout(
                &self,
                subject: &str,
                until_us: i64,
                now_us: i64,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.begin().await?;
                sqlx::query($crate::store::sql::LOCK_SUBJECT)
                    .bind(subject)
                    .bind(until_us)
                    .execute(&mut *tx)
                    .await?;
                commit_change(tx, ChangeKind::Lockout, subject, until_us, now_us, &[]).await
            }

            async fn count_failure(
                &self,
                subject: &str,
                now_us: i64,
                window_us: i64,
            ) -> $crate::store::StoreResult<(i64, i64)> {
                Ok(sqlx::query_as($crate::store::sql::COUNT_FAILURE)
                    .bind(subject)
                    .bind(now_us)
                    .bind(window_us)
                    .fetch_one(&mut *self.conn().await?)
                    .await?)
            }

            async fn purge_failures(&self, before_us: i64) -> $crate::store::StoreResult<u64> {
                let mut purged = 0;
                for statement in [
                    $crate::store::sql::PURGE_FAILURES,
                    $crate::store::sql::PURGE_TRUST,
                ] {
                    purged += sqlx::query(statement)
                        .bind(before_us)
                        .execute(&mut *self.conn().await?)
                        .await?
                        .rows_affected();
                }
                Ok(purged)
            }

            async fn trust_address(
                &self,
                pair: &$crate::domain::policy::TrustedAddress,
                now_us: i64,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.begin().await?;
                sqlx::query($crate::store::sql::TRUST_ADDRESS)
                    .bind(&pair.client_id)
                    .bind(pair.address.to_string())
                    .bind(pair.until_us)
                    .execute(&mut *tx)
                    .await?;
                let subject = pair.subject();
                commit_change(tx, ChangeKind::Trust, &subject, pair.until_us, now_us, &[]).await
            }

            async fn live_trust(
                &self,
                now_us: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::policy::TrustedAddress>> {
                let rows: Vec<$crate::store::rows::TrustRow> =
                    sqlx::query_as($crate::store::sql::LIVE_TRUST)
                        .bind(now_us)
                        .fetch_all(&mut *self.conn().await?)
                        .await?;
                Ok(rows
                    .into_iter()
                    .filter_map($crate::store::rows::TrustRow::parse)
                    .collect())
            }

            async fn live_lockouts(
                &self,
                now_us: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::changes::Change>> {
                let rows: Vec<$crate::store::rows::ChangeRow> =
                    sqlx::query_as($crate::store::sql::LIVE_LOCKOUTS)
                        .bind(now_us)
                        .bind(ChangeKind::Lockout.as_str())
                        .fetch_all(&mut *self.conn().await?)
                        .await?;
                Ok($crate::store::rows::all(rows))
            }
        }
    };
}

pub(crate) use policy_store_impl;
