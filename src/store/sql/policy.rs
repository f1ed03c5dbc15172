//! PolicyStore: replica heartbeats and the lockouts replicas share.

/// Records (or refreshes) one replica's heartbeat.
pub(crate) const UPSERT_REPLICA: &str = "INSERT INTO replicas (replica_id, heartbeat_time_us) \
    VALUES ($1, $2) ON CONFLICT (replica_id) DO UPDATE SET heartbeat_time_us = $2";

/// Forgets replicas that stopped without saying so, long after they stopped counting.
pub(crate) const DELETE_DEAD_REPLICAS: &str = "DELETE FROM replicas WHERE heartbeat_time_us < $1";

pub(crate) const COUNT_LIVE_REPLICAS: &str =
    "SELECT COUNT(*) FROM replicas WHERE heartbeat_time_us > $1";

pub(crate) const DELETE_REPLICA: &str = "DELETE FROM replicas WHERE replica_id = $1";

/// Locks still in force: read from the change log, which keeps them longer than any lock
/// lasts (locks end within an hour; the log keeps an hour past its newest entries' expiry).
pub(crate) const LIVE_LOCKOUTS: &str = "SELECT * FROM changes \
    WHERE kind = 'lockout' AND expire_time_us > $1 ORDER BY seq";

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
                let mut tx = self.pool.begin().await?;
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
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn record_lockout(
                &self,
                subject: &str,
                until_us: i64,
                now_us: i64,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                record_change(
                    &mut tx,
                    $crate::store::CHANGE_LOCKOUT,
                    subject,
                    until_us,
                    now_us,
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn live_lockouts(
                &self,
                now_us: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::ChangeRow>> {
                Ok(sqlx::query_as($crate::store::sql::LIVE_LOCKOUTS)
                    .bind(now_us)
                    .fetch_all(&self.pool)
                    .await?)
            }
        }
    };
}

pub(crate) use policy_store_impl;
