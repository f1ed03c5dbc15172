//! The `jti`s of client assertions already accepted (RFC 7523 section 3, item 7): the
//! statements, and `assertion_store_impl!` implementing AssertionStore. Their purge runs with
//! the token purge (`tokens`).

/// Fails on the primary key when the client used this `jti` before: a replay.
pub(crate) const INSERT_ASSERTION_JTI: &str =
    "INSERT INTO assertion_jtis (client_id, jti, expire_time_us) VALUES ($1, $2, $3)";

/// A `jti` can be forgotten once its assertion has expired: the assertion is refused anyway.
pub(crate) const PURGE_ASSERTION_JTIS: &str =
    "DELETE FROM assertion_jtis WHERE expire_time_us <= $1";

/// Implements AssertionStore for `$store`.
macro_rules! assertion_store_impl {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::AssertionStore for $store {
            #[tracing::instrument(skip(self, jti))]
            async fn spend_assertion(
                &self,
                client_id: &str,
                jti: &str,
                expire_us: i64,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query($crate::store::sql::INSERT_ASSERTION_JTI)
                    .bind(client_id)
                    .bind(jti)
                    .bind(expire_us)
                    .execute(&mut *self.conn().await?)
                    .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use assertion_store_impl;
