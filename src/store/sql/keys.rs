//! Signing keys and sealed secrets: the statements, and `key_store_impl!` implementing KeyStore.

pub(crate) const INSERT_FIRST_KEY: &str = "INSERT INTO signing_keys (kid, algorithm, public_jwk, \
    private_key, kek_id, create_time_us, activate_time_us, retire_time_us) \
    SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE NOT EXISTS (SELECT 1 FROM signing_keys)";

/// Inserts a key only if `$9` is still the newest key: of several replicas rotating at once,
/// the first wins and the others insert nothing.
pub(crate) const INSERT_ROTATED_KEY: &str = "INSERT INTO signing_keys (kid, algorithm, \
    public_jwk, private_key, kek_id, create_time_us, activate_time_us, retire_time_us) \
    SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE (SELECT kid FROM signing_keys \
    ORDER BY create_time_us DESC, kid DESC LIMIT 1) = $9";

pub(crate) const RETIRE_KEY: &str = "UPDATE signing_keys SET retire_time_us = $2 WHERE kid = $1";

pub(crate) const LIST_KEYS: &str =
    "SELECT * FROM signing_keys ORDER BY create_time_us DESC, kid DESC";

pub(crate) const GET_SEALED_SECRET: &str = "SELECT * FROM sealed_secrets WHERE name = $1";

pub(crate) const LIST_SEALED_SECRETS: &str = "SELECT * FROM sealed_secrets ORDER BY name";

pub(crate) const INSERT_SEALED_SECRET: &str = "INSERT INTO sealed_secrets \
    (name, sealed, kek_id, create_time_us) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING";

/// Re-seals one key if it still holds what the rotation read: compare-and-set on the material.
pub(crate) const RESEAL_KEY: &str =
    "UPDATE signing_keys SET private_key = $3, kek_id = $4 WHERE kid = $1 AND private_key = $2";

pub(crate) const RESEAL_SECRET: &str =
    "UPDATE sealed_secrets SET sealed = $3, kek_id = $4 WHERE name = $1 AND sealed = $2";

/// What a KEK rotation would leave under another KEK than `$1`: must be nothing.
pub(crate) const COUNT_NOT_UNDER_KEK: &str = "SELECT \
    (SELECT COUNT(*) FROM signing_keys WHERE kek_id <> $1) + \
    (SELECT COUNT(*) FROM sealed_secrets WHERE kek_id <> $1)";

/// Implements KeyStore for `$store`. `$key_lock` is that of `shared_store_impl!`: run first in
/// the transactions that add a key.
macro_rules! key_store_impl {
    ($store:ty, $key_lock:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::KeyStore for $store {
            #[tracing::instrument(skip_all, fields(kid = %key.kid))]
            async fn insert_first_key(
                &self,
                key: &$crate::domain::keys::StoredKey,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.begin_key_write().await?;
                let done = bind_key(sqlx::query($crate::store::sql::INSERT_FIRST_KEY), key)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(skip(self))]
            async fn list_keys(
                &self,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::keys::StoredKey>> {
                let rows: Vec<$crate::store::rows::KeyRow> =
                    sqlx::query_as($crate::store::sql::LIST_KEYS)
                        .fetch_all(&mut *self.conn().await?)
                        .await?;
                Ok($crate::store::rows::all(rows))
            }

            #[tracing::instrument(skip_all, fields(kid = %key.kid, newest_kid = %newest_kid))]
            async fn insert_rotated_key(
                &self,
                key: &$crate::domain::keys::StoredKey,
                newest_kid: &str,
                retire: &[(String, i64)],
                audit: &[$crate::domain::AuditEvent],
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.begin_key_write().await?;
                let done = bind_key(sqlx::query($crate::store::sql::INSERT_ROTATED_KEY), key)
                    .bind(newest_kid)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() != 1 {
                    return Ok(false); // dropping `tx` rolls back
                }
                for (kid, at_us) in retire {
                    sqlx::query($crate::store::sql::RETIRE_KEY)
                        .bind(kid)
                        .bind(*at_us)
                        .execute(&mut *tx)
                        .await?;
                }
                // Other replicas reload their keys when they read this (an emergency
                // `retire_previous` then applies everywhere within milliseconds).
                commit_change(tx, ChangeKind::Keys, &key.kid, 0, key.create_time_us, audit).await?;
                Ok(true)
            }

            #[tracing::instrument(skip(self))]
            async fn get_sealed_secret(
                &self,
                name: &str,
            ) -> $crate::store::StoreResult<Option<$crate::domain::keys::SealedSecret>> {
                let row: Option<$crate::store::rows::SealedSecretRow> =
                    sqlx::query_as($crate::store::sql::GET_SEALED_SECRET)
                        .bind(name)
                        .fetch_optional(&mut *self.conn().await?)
                        .await?;
                Ok(row.map(Into::into))
            }

            #[tracing::instrument(skip(self))]
            async fn list_sealed_secrets(
                &self,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::keys::SealedSecret>> {
                let rows: Vec<$crate::store::rows::SealedSecretRow> =
                    sqlx::query_as($crate::store::sql::LIST_SEALED_SECRETS)
                        .fetch_all(&mut *self.conn().await?)
                        .await?;
                Ok($crate::store::rows::all(rows))
            }

            #[tracing::instrument(skip_all, fields(name = %secret.name))]
            async fn insert_sealed_secret(
                &self,
                secret: &$crate::domain::keys::SealedSecret,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.begin_key_write().await?;
                let done = sqlx::query($crate::store::sql::INSERT_SEALED_SECRET)
                    .bind(&secret.name)
                    .bind(&secret.sealed)
                    .bind(&secret.kek_id)
                    .bind(secret.create_time_us)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(skip_all, fields(keys = keys.len(), kek_id = %kek_id))]
            async fn reseal(
                &self,
                keys: &[$crate::domain::keys::Resealed],
                secrets: &[$crate::domain::keys::Resealed],
                kek_id: &str,
                audit: &[$crate::domain::AuditEvent],
            ) -> $crate::store::StoreResult<bool> {
                // Serialised with key inserts: a rotation of signing keys waits for this one, or
                // this one for it and then finds its key in the final count.
                let mut tx = self.begin_key_write().await?;
                let statements = [
                    ($crate::store::sql::RESEAL_KEY, keys),
                    ($crate::store::sql::RESEAL_SECRET, secrets),
                ];
                for (statement, rows) in statements {
                    for row in rows {
                        let done = sqlx::query(statement)
                            .bind(&row.name)
                            .bind(&row.old)
                            .bind(&row.new)
                            .bind(kek_id)
                            .execute(&mut *tx)
                            .await?;
                        if done.rows_affected() != 1 {
                            return Ok(false); // dropping `tx` rolls back
                        }
                    }
                }
                let left: i64 = sqlx::query_scalar($crate::store::sql::COUNT_NOT_UNDER_KEK)
                    .bind(kek_id)
                    .fetch_one(&mut *tx)
                    .await?;
                if left != 0 {
                    return Ok(false);
                }
                insert_audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(true)
            }
        }

        impl $store {
            /// A transaction that writes sealed material: it takes the key lock first, so that
            /// such writes run one at a time across replicas.
            async fn begin_key_write(
                &self,
            ) -> $crate::store::StoreResult<
                sqlx::Transaction<'static, <$store as $crate::store::sql::HasDb>::Db>,
            > {
                let mut tx = self.begin().await?;
                let lock: Option<&str> = $key_lock;
                if let Some(lock) = lock {
                    sqlx::query(lock).execute(&mut *tx).await?;
                }
                Ok(tx)
            }
        }

        /// Binds a signing key's columns, `$1` to `$8` of INSERT_FIRST_KEY and INSERT_ROTATED_KEY.
        fn bind_key<'q>(query: Query<'q>, key: &'q $crate::domain::keys::StoredKey) -> Query<'q> {
            query
                .bind(&key.kid)
                .bind(&key.algorithm)
                .bind(&key.public_jwk)
                .bind(&key.private_key)
                .bind(&key.kek_id)
                .bind(key.create_time_us)
                .bind(key.activate_time_us)
                .bind(key.retire_time_us)
        }
    };
}

pub(crate) use key_store_impl;
