//! What replicas read to follow the writes of others: the change log (appended to by
//! `commit_change`, in `mod.rs`, inside each write's transaction), the live deny list and the
//! backend's change feed. The statements, and `change_store_impl!` implementing ChangeStore.

pub(crate) const LAST_CHANGE: &str = "SELECT COALESCE(MAX(seq), 0) FROM changes";

pub(crate) const CHANGES_SINCE: &str = "SELECT * FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2";

/// A page of the deny list in primary-key order, after (`$2`, `$3`); `('', '')` is the start.
pub(crate) const LIVE_REVOCATIONS: &str = "SELECT * FROM revocations WHERE expire_time_us > $1 \
    AND (kind, subject) > ($2, $3) ORDER BY kind, subject LIMIT $4";

/// Implements ChangeStore for `$store`; the backend provides `feed()`.
macro_rules! change_store_impl {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::ChangeStore for $store {
            async fn last_change_seq(&self) -> $crate::store::StoreResult<i64> {
                Ok(sqlx::query_scalar($crate::store::sql::LAST_CHANGE)
                    .fetch_one(&mut *self.conn().await?)
                    .await?)
            }

            async fn changes_since(
                &self,
                seq: i64,
                limit: u32,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::changes::Change>> {
                let rows: Vec<$crate::store::rows::ChangeRow> =
                    sqlx::query_as($crate::store::sql::CHANGES_SINCE)
                        .bind(seq)
                        .bind(i64::from(limit))
                        .fetch_all(&mut *self.conn().await?)
                        .await?;
                Ok($crate::store::rows::all(rows))
            }

            async fn live_revocations(
                &self,
                now_us: i64,
                after: Option<(&str, &str)>,
                limit: u32,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::changes::DenyEntry>> {
                let (kind, subject) = after.unwrap_or(("", ""));
                let rows: Vec<$crate::store::rows::RevocationRow> =
                    sqlx::query_as($crate::store::sql::LIVE_REVOCATIONS)
                        .bind(now_us)
                        .bind(kind)
                        .bind(subject)
                        .bind(i64::from(limit))
                        .fetch_all(&mut *self.conn().await?)
                        .await?;
                Ok($crate::store::rows::all(rows))
            }

            async fn change_feed(
                &self,
            ) -> $crate::store::StoreResult<Box<dyn $crate::store::ChangeFeed>> {
                self.feed().await
            }
        }
    };
}

pub(crate) use change_store_impl;
