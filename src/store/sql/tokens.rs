//! Refresh families (grants), their refresh tokens, opaque access tokens, the deny-list writes
//! that revoke them, and the purge of what has expired: the statements, and `token_store_impl!`
//! implementing TokenStore.

/// `$10` is the family's certificate binding (`cnf_x5t_s256`).
pub(crate) const INSERT_GRANT: &str = "INSERT INTO grants (grant_id, client_id, scopes, audiences, \
    create_time_us, access_expire_time_us, refresh_expire_time_us, revoke_time_us, \
    token_generation, cnf_x5t_s256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

pub(crate) const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens \
    (token_hash, grant_id, create_time_us, expire_time_us, use_time_us) VALUES ($1, $2, $3, $4, $5)";

/// IssueToken with a refresh token as ONE statement (Postgres: a data-modifying CTE), so the
/// durable write costs one round trip and an implicit commit instead of BEGIN, two INSERTs and
/// COMMIT. `$1`..`$9` as in INSERT_GRANT, `$10`..`$13` the refresh token's hash, create,
/// expire and use times (its family is the grant's), `$14` the family's certificate binding.
/// The foreign key is checked at the end of the statement, when the family row exists.
pub(crate) const INSERT_GRANT_WITH_REFRESH: &str = "WITH g AS (INSERT INTO grants (grant_id, \
    client_id, scopes, audiences, create_time_us, access_expire_time_us, refresh_expire_time_us, \
    revoke_time_us, token_generation, cnf_x5t_s256) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $14) \
    RETURNING grant_id) \
    INSERT INTO refresh_tokens (token_hash, grant_id, create_time_us, expire_time_us, use_time_us) \
    SELECT $10, grant_id, $11, $12, $13 FROM g";

/// RefreshToken as ONE statement (Postgres): claim the presented token (`$1`, of client `$2`,
/// at `$3`) as CLAIM_REFRESH does, extend its family (access tokens now live to `$7`, the
/// newest refresh token to `$6`) unless it was revoked meanwhile, and store the successor
/// (`$4`, created `$5`) in that family; the family comes back, or no row when nothing was
/// extended. The family's row lock is taken by the extension: a revocation that committed
/// after the statement began is seen there (the row is re-read once its lock is free), and one
/// that starts later waits for this commit and then revokes the successor with the family. If
/// a revocation wins, the claim alone commits: a spent token of a revoked family, which no
/// exchange can use either way.
pub(crate) const ROTATE_REFRESH: &str = "WITH claimed AS (UPDATE refresh_tokens \
    SET use_time_us = $3 \
    WHERE token_hash = $1 AND use_time_us IS NULL AND expire_time_us > $3 \
    AND EXISTS (SELECT 1 FROM grants g JOIN clients c ON c.client_id = g.client_id \
        WHERE g.grant_id = refresh_tokens.grant_id AND g.client_id = $2 \
        AND g.revoke_time_us IS NULL AND g.token_generation = c.token_generation) \
    RETURNING grant_id), \
    extended AS (UPDATE grants SET \
        access_expire_time_us = GREATEST(access_expire_time_us, $7), \
        refresh_expire_time_us = GREATEST(refresh_expire_time_us, $6) \
    WHERE grant_id = (SELECT grant_id FROM claimed) AND revoke_time_us IS NULL \
    RETURNING *), \
    successor AS (INSERT INTO refresh_tokens \
        (token_hash, grant_id, create_time_us, expire_time_us, use_time_us) \
        SELECT $4, grant_id, $5, $6, NULL FROM extended) \
    SELECT * FROM extended";

/// The atomic claim: of concurrent exchanges of one token, exactly one sees a row come back.
pub(crate) const CLAIM_REFRESH: &str = "UPDATE refresh_tokens SET use_time_us = $3 \
    WHERE token_hash = $1 AND use_time_us IS NULL AND expire_time_us > $3 \
    AND EXISTS (SELECT 1 FROM grants g JOIN clients c ON c.client_id = g.client_id \
        WHERE g.grant_id = refresh_tokens.grant_id AND g.client_id = $2 \
        AND g.revoke_time_us IS NULL AND g.token_generation = c.token_generation) \
    RETURNING grant_id";

pub(crate) const EXTEND_GRANT: &str = "UPDATE grants SET \
    access_expire_time_us = CASE WHEN access_expire_time_us > $2 THEN access_expire_time_us ELSE $2 END, \
    refresh_expire_time_us = CASE WHEN refresh_expire_time_us > $3 THEN refresh_expire_time_us ELSE $3 END \
    WHERE grant_id = $1 AND revoke_time_us IS NULL";

pub(crate) const SELECT_GRANT: &str = "SELECT * FROM grants WHERE grant_id = $1";

pub(crate) const SELECT_REFRESH: &str = "SELECT * FROM refresh_tokens WHERE token_hash = $1";

pub(crate) const REVOKE_GRANT: &str = "UPDATE grants SET revoke_time_us = $2 \
    WHERE grant_id = $1 AND revoke_time_us IS NULL RETURNING client_id, access_expire_time_us";

pub(crate) const INSERT_REVOCATION: &str = "INSERT INTO revocations \
    (kind, subject, client_id, expire_time_us, create_time_us) VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT DO NOTHING";

pub(crate) const INSERT_OPAQUE: &str = "INSERT INTO opaque_tokens \
    (token_hash, jti, client_id, claims, expire_time_us) VALUES ($1, $2, $3, $4, $5)";

pub(crate) const SELECT_OPAQUE: &str = "SELECT * FROM opaque_tokens WHERE token_hash = $1";

pub(crate) const DELETE_OPAQUE: &str = "DELETE FROM opaque_tokens WHERE token_hash = $1";

pub(crate) const REVOKE_CLIENT_GRANTS: &str = "UPDATE grants SET revoke_time_us = $2 \
    WHERE client_id = $1 AND revoke_time_us IS NULL";

pub(crate) const DELETE_CLIENT_OPAQUE: &str = "DELETE FROM opaque_tokens WHERE client_id = $1";

pub(crate) const PURGE_REVOCATIONS: &str = "DELETE FROM revocations WHERE expire_time_us <= $1";
pub(crate) const PURGE_CHANGES: &str = "DELETE FROM changes WHERE create_time_us < $1";
pub(crate) const PURGE_OPAQUE: &str = "DELETE FROM opaque_tokens WHERE expire_time_us <= $1";
/// Only unspent ones: a spent token is kept as long as its family, so presenting it again is
/// always detected as reuse.
pub(crate) const PURGE_REFRESH: &str =
    "DELETE FROM refresh_tokens WHERE expire_time_us <= $1 AND use_time_us IS NULL";
/// A family goes once its refresh tokens and its access tokens have all expired (and with it
/// any spent tokens kept for reuse detection).
pub(crate) const PURGE_GRANTS: &str = "DELETE FROM grants \
    WHERE refresh_expire_time_us <= $1 AND access_expire_time_us <= $1";

/// Implements TokenStore for `$store`, with the token helpers (`insert_refresh`, `bind_grant`,
/// and `revoke_client_tokens_in`, which ClientStore calls). `$cte_writes` is that of
/// `shared_store_impl!`: whether the durable token writes are single statements.
macro_rules! token_store_impl {
    ($store:ty, $cte_writes:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::TokenStore for $store {
            #[tracing::instrument(skip_all, fields(grant_id = %grant.grant_id))]
            async fn insert_grant(
                &self,
                grant: &$crate::domain::token_endpoint::RefreshFamily,
                first: &$crate::domain::token_endpoint::RefreshRecord,
            ) -> $crate::store::StoreResult<()> {
                let cte_writes: bool = $cte_writes;
                if cte_writes {
                    let query = sqlx::query($crate::store::sql::INSERT_GRANT_WITH_REFRESH);
                    bind_grant(query, grant)
                        .bind(&first.token_hash)
                        .bind(first.create_time_us)
                        .bind(first.expire_time_us)
                        .bind(first.use_time_us)
                        .bind(&grant.cnf_x5t_s256)
                        .execute(&mut *self.conn().await?)
                        .await?;
                    return Ok(());
                }
                let mut tx = self.begin().await?;
                bind_grant(sqlx::query($crate::store::sql::INSERT_GRANT), grant)
                    .bind(&grant.cnf_x5t_s256)
                    .execute(&mut *tx)
                    .await?;
                insert_refresh(&mut *tx, first).await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(skip_all, fields(client_id))]
            async fn rotate_refresh(
                &self,
                old_hash: &str,
                client_id: &str,
                successor: &$crate::domain::token_endpoint::RefreshRecord,
                access_expire_us: i64,
                now_us: i64,
            ) -> $crate::store::StoreResult<$crate::domain::token_endpoint::RefreshClaim> {
                let cte_writes: bool = $cte_writes;
                if cte_writes {
                    let grant: Option<$crate::store::rows::GrantRow> =
                        sqlx::query_as($crate::store::sql::ROTATE_REFRESH)
                            .bind(old_hash)
                            .bind(client_id)
                            .bind(now_us)
                            .bind(&successor.token_hash)
                            .bind(successor.create_time_us)
                            .bind(successor.expire_time_us)
                            .bind(access_expire_us)
                            .fetch_optional(&mut *self.conn().await?)
                            .await?;
                    return Ok(match grant {
                        Some(grant) => {
                            $crate::domain::token_endpoint::RefreshClaim::Rotated(grant.into())
                        }
                        None => $crate::domain::token_endpoint::RefreshClaim::Rejected(
                            self.find_refresh(old_hash).await?,
                        ),
                    });
                }
                // The claim is the transaction's first statement, a write: Postgres row-locks
                // the token (a concurrent claim waits, then finds it spent) and SQLite takes
                // its write lock at once.
                let mut tx = self.begin().await?;
                let claimed: Option<String> = sqlx::query_scalar($crate::store::sql::CLAIM_REFRESH)
                    .bind(old_hash)
                    .bind(client_id)
                    .bind(now_us)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(grant_id) = claimed else {
                    drop(tx);
                    return Ok($crate::domain::token_endpoint::RefreshClaim::Rejected(
                        self.find_refresh(old_hash).await?,
                    ));
                };
                let mut successor = successor.clone();
                successor.grant_id = grant_id.clone();
                insert_refresh(&mut *tx, &successor).await?;
                // The claim's check does not lock the family: a revocation may have committed
                // since. This write waits for it, and then finds the family revoked.
                let extended = sqlx::query($crate::store::sql::EXTEND_GRANT)
                    .bind(&grant_id)
                    .bind(access_expire_us)
                    .bind(successor.expire_time_us)
                    .execute(&mut *tx)
                    .await?;
                if extended.rows_affected() != 1 {
                    drop(tx);
                    return Ok($crate::domain::token_endpoint::RefreshClaim::Rejected(
                        self.find_refresh(old_hash).await?,
                    ));
                }
                let grant: $crate::store::rows::GrantRow =
                    sqlx::query_as($crate::store::sql::SELECT_GRANT)
                        .bind(&grant_id)
                        .fetch_one(&mut *tx)
                        .await?;
                tx.commit().await?;
                Ok($crate::domain::token_endpoint::RefreshClaim::Rotated(
                    grant.into(),
                ))
            }

            #[tracing::instrument(skip_all)]
            async fn find_refresh(
                &self,
                token_hash: &str,
            ) -> $crate::store::StoreResult<
                Option<(
                    $crate::domain::token_endpoint::RefreshRecord,
                    $crate::domain::token_endpoint::RefreshFamily,
                )>,
            > {
                let token: Option<$crate::store::rows::RefreshRow> =
                    sqlx::query_as($crate::store::sql::SELECT_REFRESH)
                        .bind(token_hash)
                        .fetch_optional(&mut *self.conn().await?)
                        .await?;
                let Some(token) = token else {
                    return Ok(None);
                };
                let token = $crate::domain::token_endpoint::RefreshRecord::from(token);
                let grant: Option<$crate::store::rows::GrantRow> =
                    sqlx::query_as($crate::store::sql::SELECT_GRANT)
                        .bind(&token.grant_id)
                        .fetch_optional(&mut *self.conn().await?)
                        .await?;
                Ok(grant.map(|g| (token, g.into())))
            }

            #[tracing::instrument(skip(self))]
            async fn revoke_grant(
                &self,
                grant_id: &str,
                leeway_us: i64,
                now_us: i64,
                audit: &[$crate::domain::AuditEvent],
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.begin().await?;
                let revoked: Option<(String, i64)> =
                    sqlx::query_as($crate::store::sql::REVOKE_GRANT)
                        .bind(grant_id)
                        .bind(now_us)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some((client_id, access_expire_us)) = revoked else {
                    return Ok(false);
                };
                let expire_us = access_expire_us.saturating_add(leeway_us);
                sqlx::query($crate::store::sql::INSERT_REVOCATION)
                    .bind(ChangeKind::Grant.as_str())
                    .bind(grant_id)
                    .bind(&client_id)
                    .bind(expire_us)
                    .bind(now_us)
                    .execute(&mut *tx)
                    .await?;
                commit_change(tx, ChangeKind::Grant, grant_id, expire_us, now_us, audit).await?;
                Ok(true)
            }

            #[tracing::instrument(skip_all, fields(jti = %token.jti))]
            async fn insert_opaque(
                &self,
                token: &$crate::domain::token_endpoint::OpaqueRecord,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query($crate::store::sql::INSERT_OPAQUE)
                    .bind(&token.token_hash)
                    .bind(&token.jti)
                    .bind(&token.client_id)
                    .bind(sqlx::types::Json(&token.claims))
                    .bind(token.expire_time_us)
                    .execute(&mut *self.conn().await?)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(skip_all)]
            async fn find_opaque(
                &self,
                token_hash: &str,
            ) -> $crate::store::StoreResult<Option<$crate::domain::token_endpoint::OpaqueRecord>>
            {
                let row: Option<$crate::store::rows::OpaqueRow> =
                    sqlx::query_as($crate::store::sql::SELECT_OPAQUE)
                        .bind(token_hash)
                        .fetch_optional(&mut *self.conn().await?)
                        .await?;
                Ok(row.map(Into::into))
            }

            #[tracing::instrument(skip(self, opaque_hash))]
            async fn revoke_access_token(
                &self,
                jti: &str,
                client_id: &str,
                expire_us: i64,
                opaque_hash: Option<&str>,
                now_us: i64,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.begin().await?;
                let done = sqlx::query($crate::store::sql::INSERT_REVOCATION)
                    .bind(ChangeKind::Token.as_str())
                    .bind(jti)
                    .bind(client_id)
                    .bind(expire_us)
                    .bind(now_us)
                    .execute(&mut *tx)
                    .await?;
                if let Some(hash) = opaque_hash {
                    sqlx::query($crate::store::sql::DELETE_OPAQUE)
                        .bind(hash)
                        .execute(&mut *tx)
                        .await?;
                }
                if done.rows_affected() == 0 {
                    tx.commit().await?;
                    return Ok(false);
                }
                commit_change(tx, ChangeKind::Token, jti, expire_us, now_us, &[]).await?;
                Ok(true)
            }

            #[tracing::instrument(skip(self))]
            async fn purge(
                &self,
                now_us: i64,
                changes_before_us: i64,
            ) -> $crate::store::StoreResult<$crate::store::PurgeCounts> {
                let mut conn = self.conn().await?;
                let mut run = async |sql: &'static str, at: i64| {
                    Ok::<u64, $crate::store::StoreError>(
                        sqlx::query(sql)
                            .bind(at)
                            .execute(&mut *conn)
                            .await?
                            .rows_affected(),
                    )
                };
                Ok($crate::store::PurgeCounts {
                    revocations: run($crate::store::sql::PURGE_REVOCATIONS, now_us).await?,
                    changes: run($crate::store::sql::PURGE_CHANGES, changes_before_us).await?,
                    opaque_tokens: run($crate::store::sql::PURGE_OPAQUE, now_us).await?,
                    refresh_tokens: run($crate::store::sql::PURGE_REFRESH, now_us).await?,
                    grants: run($crate::store::sql::PURGE_GRANTS, now_us).await?,
                    assertion_jtis: run($crate::store::sql::PURGE_ASSERTION_JTIS, now_us).await?,
                })
            }
        }

        async fn revoke_client_tokens_in(
            tx: &mut sqlx::Transaction<'_, <$store as $crate::store::sql::HasDb>::Db>,
            client_id: &str,
            now_us: i64,
        ) -> $crate::store::StoreResult<()> {
            sqlx::query($crate::store::sql::REVOKE_CLIENT_GRANTS)
                .bind(client_id)
                .bind(now_us)
                .execute(&mut **tx)
                .await?;
            sqlx::query($crate::store::sql::DELETE_CLIENT_OPAQUE)
                .bind(client_id)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        async fn insert_refresh<'e, E>(
            executor: E,
            token: &$crate::domain::token_endpoint::RefreshRecord,
        ) -> $crate::store::StoreResult<()>
        where
            E: sqlx::Executor<'e, Database = <$store as $crate::store::sql::HasDb>::Db>,
        {
            sqlx::query($crate::store::sql::INSERT_REFRESH)
                .bind(&token.token_hash)
                .bind(&token.grant_id)
                .bind(token.create_time_us)
                .bind(token.expire_time_us)
                .bind(token.use_time_us)
                .execute(executor)
                .await?;
            Ok(())
        }

        /// Binds a refresh family, `$1` to `$9` of INSERT_GRANT and INSERT_GRANT_WITH_REFRESH.
        fn bind_grant<'q>(
            query: Query<'q>,
            grant: &$crate::domain::token_endpoint::RefreshFamily,
        ) -> Query<'q> {
            use sqlx::types::Json;
            query
                .bind(&grant.grant_id)
                .bind(&grant.client_id)
                .bind(Json(&grant.scopes))
                .bind(Json(&grant.audiences))
                .bind(grant.create_time_us)
                .bind(grant.access_expire_time_us)
                .bind(grant.refresh_expire_time_us)
                .bind(grant.revoke_time_us)
                .bind(grant.token_generation)
        }
    };
}

pub(crate) use token_store_impl;
