//! Clients and their secrets: the statements, and `client_store_impl!` implementing ClientStore.
//! Revoking a client's tokens writes grants and opaque tokens: that helper,
//! `revoke_client_tokens_in`, lives with them in `tokens`.

pub(crate) const INSERT_CLIENT: &str = "INSERT INTO clients (client_id, tenant, name, description, \
    scopes, audiences, roles, access_token_ttl_secs, refresh_token_ttl_secs, active, allowed_cidrs, \
    rate_limit_per_minute, metadata, access_token_format, exchange_audiences, auth_methods, jwks, \
    jwks_uri, federated_credentials, create_time_us, update_time_us, last_used_time_us, revision, \
    token_generation, tls_client_auth_subject_dn, tls_client_auth_san_dns, tls_client_auth_san_uri, \
    tls_client_auth_san_ip, tls_client_auth_san_email, tls_client_certificate_bound_access_tokens, \
    refresh_rate_limit_per_minute, api_rate_limit_per_minute) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
    $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32)";

pub(crate) const INSERT_SECRET: &str = "INSERT INTO client_secrets \
    (secret_id, client_id, selector, hash, create_time_us, expire_time_us) \
    VALUES ($1, $2, $3, $4, $5, $6)";

pub(crate) const SELECT_CLIENT: &str = "SELECT * FROM clients WHERE client_id = $1";

pub(crate) const LIST_CLIENTS: &str = "SELECT * FROM clients \
    WHERE ($1 IS NULL OR tenant = $1) AND ($2 IS NULL OR client_id > $2) \
    ORDER BY client_id LIMIT $3";

/// Parameters `$3`..`$19` are the settings, in the same order as in INSERT_CLIENT. `$22` is
/// added to the token generation (0 or 1): the generation is never overwritten, so an update
/// computed from a stale read cannot bring revoked tokens back. `$23`..`$28` are the RFC 8705
/// settings, in the order INSERT_CLIENT has them as `$25`..`$30` (`bind_tls`); `$29` and `$30`
/// (`$31` and `$32` there) are the refresh and API rate limits.
pub(crate) const UPDATE_CLIENT: &str = "UPDATE clients SET name = $3, description = $4, \
    scopes = $5, audiences = $6, roles = $7, access_token_ttl_secs = $8, \
    refresh_token_ttl_secs = $9, active = $10, allowed_cidrs = $11, rate_limit_per_minute = $12, \
    metadata = $13, access_token_format = $14, exchange_audiences = $15, auth_methods = $16, \
    jwks = $17, jwks_uri = $18, federated_credentials = $19, update_time_us = $20, revision = $21, \
    token_generation = token_generation + $22, \
    tls_client_auth_subject_dn = $23, tls_client_auth_san_dns = $24, tls_client_auth_san_uri = $25, \
    tls_client_auth_san_ip = $26, tls_client_auth_san_email = $27, \
    tls_client_certificate_bound_access_tokens = $28, refresh_rate_limit_per_minute = $29, \
    api_rate_limit_per_minute = $30 \
    WHERE client_id = $1 AND revision = $2";

pub(crate) const BUMP_GENERATION: &str =
    "UPDATE clients SET token_generation = token_generation + 1 WHERE client_id = $1";

pub(crate) const CLIENT_EXISTS: &str = "SELECT COUNT(*) FROM clients WHERE client_id = $1";

pub(crate) const DELETE_CLIENT: &str = "DELETE FROM clients WHERE client_id = $1";

pub(crate) const LIVE_SECRET: &str = "SELECT hash, expire_time_us FROM client_secrets \
    WHERE client_id = $1 AND selector = $2 AND (expire_time_us IS NULL OR expire_time_us > $3) \
    ORDER BY create_time_us DESC LIMIT 1";

/// Takes the client's row lock first, so concurrent rotations of one client run one after the
/// other (each then sees and expires the secret the other added).
pub(crate) const LOCK_CLIENT: &str =
    "UPDATE clients SET client_id = client_id WHERE client_id = $1";

pub(crate) const LIVE_SECRETS: &str = "SELECT hash FROM client_secrets \
    WHERE client_id = $1 AND (expire_time_us IS NULL OR expire_time_us > $2) \
    ORDER BY create_time_us DESC";

/// Shortens the life of every live secret; never lengthens one.
pub(crate) const EXPIRE_SECRETS: &str = "UPDATE client_secrets SET expire_time_us = $2 \
    WHERE client_id = $1 AND (expire_time_us IS NULL OR expire_time_us > $2)";

/// Secrets that died before now are kept no longer than the next rotation.
pub(crate) const PURGE_SECRETS: &str =
    "DELETE FROM client_secrets WHERE client_id = $1 AND expire_time_us <= $2";

pub(crate) const TOUCH_CLIENT: &str = "UPDATE clients SET last_used_time_us = $2, \
    last_used_address = $3 \
    WHERE client_id = $1 AND (last_used_time_us IS NULL OR last_used_time_us < $2)";

/// Implements ClientStore for `$store`, with the helpers only clients use (`bind_settings`,
/// `insert_secret`).
macro_rules! client_store_impl {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::ClientStore for $store {
            #[tracing::instrument(skip_all, fields(client_id = %client.id))]
            async fn insert_client(
                &self,
                client: &$crate::domain::Client,
                secret: Option<&$crate::domain::clients::StoredSecret>,
                audit: &[$crate::domain::AuditEvent],
            ) -> $crate::store::StoreResult<()> {
                let client = &$crate::store::rows::ClientRow::from(client);
                let mut tx = self.begin().await?;
                let query = sqlx::query($crate::store::sql::INSERT_CLIENT)
                    .bind(&client.client_id)
                    .bind(&client.tenant);
                let query = bind_settings(query, client)
                    .bind(client.create_time_us)
                    .bind(client.update_time_us)
                    .bind(client.last_used_time_us)
                    .bind(client.revision)
                    .bind(client.token_generation);
                bind_tls(query, client)
                    .bind(client.refresh_rate_limit_per_minute)
                    .bind(client.api_rate_limit_per_minute)
                    .execute(&mut *tx)
                    .await?;
                if let Some(secret) = secret {
                    insert_secret(&mut *tx, secret).await?;
                }
                let at_us = client.create_time_us;
                commit_change(tx, ChangeKind::Client, &client.client_id, 0, at_us, audit).await
            }

            #[tracing::instrument(skip(self))]
            async fn get_client(
                &self,
                client_id: &str,
            ) -> $crate::store::StoreResult<Option<$crate::domain::Client>> {
                let row: Option<$crate::store::rows::ClientRow> =
                    sqlx::query_as($crate::store::sql::SELECT_CLIENT)
                        .bind(client_id)
                        .fetch_optional(&mut *self.conn().await?)
                        .await?;
                row.map($crate::domain::Client::try_from).transpose()
            }

            #[tracing::instrument(skip(self))]
            async fn list_clients(
                &self,
                tenant: Option<&str>,
                after: Option<&str>,
                limit: u32,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::Client>> {
                let rows: Vec<$crate::store::rows::ClientRow> =
                    sqlx::query_as($crate::store::sql::LIST_CLIENTS)
                        .bind(tenant)
                        .bind(after)
                        .bind(i64::from(limit))
                        .fetch_all(&mut *self.conn().await?)
                        .await?;
                Ok($crate::store::rows::parsed_clients(rows))
            }

            #[tracing::instrument(skip_all, fields(client_id = %client.id))]
            async fn update_client(
                &self,
                client: &$crate::domain::Client,
                expected_revision: i64,
                revoke_tokens: bool,
                audit: &[$crate::domain::AuditEvent],
            ) -> $crate::store::StoreResult<()> {
                let client = &$crate::store::rows::ClientRow::from(client);
                let mut tx = self.begin().await?;
                let query = sqlx::query($crate::store::sql::UPDATE_CLIENT)
                    .bind(&client.client_id)
                    .bind(expected_revision);
                let query = bind_settings(query, client)
                    .bind(client.update_time_us)
                    .bind(client.revision)
                    .bind(i64::from(revoke_tokens));
                let done = bind_tls(query, client)
                    .bind(client.refresh_rate_limit_per_minute)
                    .bind(client.api_rate_limit_per_minute)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 1 {
                    if revoke_tokens {
                        revoke_client_tokens_in(&mut tx, &client.client_id, client.update_time_us)
                            .await?;
                    }
                    let at_us = client.update_time_us;
                    return commit_change(
                        tx,
                        ChangeKind::Client,
                        &client.client_id,
                        0,
                        at_us,
                        audit,
                    )
                    .await;
                }
                drop(tx);
                let (count,): (i64,) = sqlx::query_as($crate::store::sql::CLIENT_EXISTS)
                    .bind(&client.client_id)
                    .fetch_one(&mut *self.conn().await?)
                    .await?;
                Err(if count == 0 {
                    $crate::store::StoreError::NotFound
                } else {
                    $crate::store::StoreError::Conflict
                })
            }

            #[tracing::instrument(skip(self))]
            async fn delete_client(
                &self,
                client_id: &str,
                now_us: i64,
                audit: &[$crate::domain::AuditEvent],
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.begin().await?;
                let done = sqlx::query($crate::store::sql::DELETE_CLIENT)
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                commit_change(tx, ChangeKind::Client, client_id, 0, now_us, audit).await?;
                Ok(true)
            }

            #[tracing::instrument(skip(self))]
            async fn revoke_client_tokens(
                &self,
                client_id: &str,
                now_us: i64,
                audit: &[$crate::domain::AuditEvent],
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.begin().await?;
                let done = sqlx::query($crate::store::sql::BUMP_GENERATION)
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                revoke_client_tokens_in(&mut tx, client_id, now_us).await?;
                commit_change(tx, ChangeKind::Client, client_id, 0, now_us, audit).await?;
                Ok(true)
            }

            #[tracing::instrument(skip(self, selector))]
            async fn live_secret(
                &self,
                client_id: &str,
                selector: &str,
                now_us: i64,
            ) -> $crate::store::StoreResult<Option<$crate::domain::clients::LiveSecret>> {
                let row: Option<$crate::store::rows::LiveSecretRow> =
                    sqlx::query_as($crate::store::sql::LIVE_SECRET)
                        .bind(client_id)
                        .bind(selector)
                        .bind(now_us)
                        .fetch_optional(&mut *self.conn().await?)
                        .await?;
                Ok(row.map(Into::into))
            }

            #[tracing::instrument(skip(self))]
            async fn live_secret_hashes(
                &self,
                client_id: &str,
                now_us: i64,
            ) -> $crate::store::StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar($crate::store::sql::LIVE_SECRETS)
                    .bind(client_id)
                    .bind(now_us)
                    .fetch_all(&mut *self.conn().await?)
                    .await?)
            }

            #[tracing::instrument(skip_all, fields(client_id = %secret.client_id))]
            async fn rotate_secret(
                &self,
                secret: &$crate::domain::clients::StoredSecret,
                expire_us: i64,
                audit: &[$crate::domain::AuditEvent],
            ) -> $crate::store::StoreResult<()> {
                // The first statement writes (the client's row lock), so Postgres serialises
                // concurrent rotations of one client and SQLite takes its write lock at once.
                let mut tx = self.begin().await?;
                let locked = sqlx::query($crate::store::sql::LOCK_CLIENT)
                    .bind(&secret.client_id)
                    .execute(&mut *tx)
                    .await?;
                if locked.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound);
                }
                sqlx::query($crate::store::sql::EXPIRE_SECRETS)
                    .bind(&secret.client_id)
                    .bind(expire_us)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query($crate::store::sql::PURGE_SECRETS)
                    .bind(&secret.client_id)
                    .bind(secret.create_time_us)
                    .execute(&mut *tx)
                    .await?;
                // A vanished client shows up as a foreign-key violation: NotFound.
                insert_secret(&mut *tx, secret).await?;
                // Replicas drop what they remember of verified secrets of this client.
                let at_us = secret.create_time_us;
                commit_change(tx, ChangeKind::Client, &secret.client_id, 0, at_us, audit).await
            }

            #[tracing::instrument(skip(self))]
            async fn touch_client(
                &self,
                client_id: &str,
                at_us: i64,
                address: Option<&str>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query($crate::store::sql::TOUCH_CLIENT)
                    .bind(client_id)
                    .bind(at_us)
                    .bind(address)
                    .execute(&mut *self.conn().await?)
                    .await?;
                Ok(())
            }
        }

        /// Binds a client's settings, `$3` to `$19` of both INSERT_CLIENT and UPDATE_CLIENT.
        fn bind_settings<'q>(
            query: Query<'q>,
            client: &$crate::store::rows::ClientRow,
        ) -> Query<'q> {
            use sqlx::types::Json;
            query
                .bind(&client.name)
                .bind(&client.description)
                .bind(Json(&client.scopes))
                .bind(Json(&client.audiences))
                .bind(Json(&client.roles))
                .bind(client.access_token_ttl_secs)
                .bind(client.refresh_token_ttl_secs)
                .bind(client.active)
                .bind(Json(&client.allowed_cidrs))
                .bind(client.rate_limit_per_minute)
                .bind(Json(&client.metadata))
                .bind(&client.access_token_format)
                .bind(Json(&client.exchange_audiences))
                .bind(Json(&client.auth_methods))
                .bind(&client.jwks)
                .bind(&client.jwks_uri)
                .bind(Json(&client.federated_credentials))
        }

        /// Binds a client's RFC 8705 settings, the last parameters of INSERT_CLIENT and
        /// UPDATE_CLIENT.
        fn bind_tls<'q>(query: Query<'q>, client: &$crate::store::rows::ClientRow) -> Query<'q> {
            query
                .bind(&client.tls_client_auth_subject_dn)
                .bind(&client.tls_client_auth_san_dns)
                .bind(&client.tls_client_auth_san_uri)
                .bind(&client.tls_client_auth_san_ip)
                .bind(&client.tls_client_auth_san_email)
                .bind(client.tls_client_certificate_bound_access_tokens)
        }

        async fn insert_secret<'e, E>(
            executor: E,
            secret: &$crate::domain::clients::StoredSecret,
        ) -> $crate::store::StoreResult<()>
        where
            E: sqlx::Executor<'e, Database = <$store as $crate::store::sql::HasDb>::Db>,
        {
            sqlx::query($crate::store::sql::INSERT_SECRET)
                .bind(&secret.secret_id)
                .bind(&secret.client_id)
                .bind(&secret.selector)
                .bind(&secret.hash)
                .bind(secret.create_time_us)
                .bind(secret.expire_time_us)
                .execute(executor)
                .await?;
            Ok(())
        }
    };
}

pub(crate) use client_store_impl;
