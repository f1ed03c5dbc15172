//! The SQL both backends share. Postgres and SQLite both accept `$N` placeholders, the row model
//! is common, and sqlx's pool API is the same for both, so the statements and their bindings are
//! written once here and expanded for each backend's pool type by `shared_store_impl!`.

pub(super) const INSERT_CLIENT: &str = "INSERT INTO clients (client_id, tenant, name, description, \
    scopes, audiences, roles, access_token_ttl_secs, refresh_token_ttl_secs, active, allowed_cidrs, \
    rate_limit_per_minute, metadata, access_token_format, create_time_us, update_time_us, \
    last_used_time_us, revision, token_generation) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)";

pub(super) const INSERT_SECRET: &str = "INSERT INTO client_secrets \
    (secret_id, client_id, selector, hash, create_time_us, expire_time_us) \
    VALUES ($1, $2, $3, $4, $5, $6)";

pub(super) const SELECT_CLIENT: &str = "SELECT * FROM clients WHERE client_id = $1";

pub(super) const LIST_CLIENTS: &str = "SELECT * FROM clients \
    WHERE ($1 IS NULL OR tenant = $1) AND ($2 IS NULL OR client_id > $2) \
    ORDER BY client_id LIMIT $3";

/// Parameters `$3`..`$14` are the settings, in the same order as in INSERT_CLIENT. `$17` is
/// added to the token generation (0 or 1): the generation is never overwritten, so an update
/// computed from a stale read cannot bring revoked tokens back.
pub(super) const UPDATE_CLIENT: &str = "UPDATE clients SET name = $3, description = $4, \
    scopes = $5, audiences = $6, roles = $7, access_token_ttl_secs = $8, \
    refresh_token_ttl_secs = $9, active = $10, allowed_cidrs = $11, rate_limit_per_minute = $12, \
    metadata = $13, access_token_format = $14, update_time_us = $15, revision = $16, \
    token_generation = token_generation + $17 \
    WHERE client_id = $1 AND revision = $2";

pub(super) const BUMP_GENERATION: &str =
    "UPDATE clients SET token_generation = token_generation + 1 WHERE client_id = $1";

pub(super) const REVOKE_CLIENT_GRANTS: &str = "UPDATE grants SET revoke_time_us = $2 \
    WHERE client_id = $1 AND revoke_time_us IS NULL";

pub(super) const DELETE_CLIENT_OPAQUE: &str = "DELETE FROM opaque_tokens WHERE client_id = $1";

pub(super) const INSERT_CHANGE: &str = "INSERT INTO changes \
    (kind, subject, expire_time_us, create_time_us) VALUES ($1, $2, $3, $4) RETURNING seq";

pub(super) const LAST_CHANGE: &str = "SELECT COALESCE(MAX(seq), 0) FROM changes";

pub(super) const CHANGES_SINCE: &str = "SELECT * FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2";

/// A page of the deny list in primary-key order, after (`$2`, `$3`); `('', '')` is the start.
pub(super) const LIVE_REVOCATIONS: &str = "SELECT * FROM revocations WHERE expire_time_us > $1 \
    AND (kind, subject) > ($2, $3) ORDER BY kind, subject LIMIT $4";

pub(super) const INSERT_GRANT: &str = "INSERT INTO grants (grant_id, client_id, scopes, audiences, \
    create_time_us, access_expire_time_us, refresh_expire_time_us, revoke_time_us, \
    token_generation) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub(super) const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens \
    (token_hash, grant_id, create_time_us, expire_time_us, use_time_us) VALUES ($1, $2, $3, $4, $5)";

/// IssueToken with a refresh token as ONE statement (Postgres: a data-modifying CTE), so the
/// durable write costs one round trip and an implicit commit instead of BEGIN, two INSERTs and
/// COMMIT. `$1`..`$9` as in INSERT_GRANT, `$10`..`$13` the refresh token's hash, create,
/// expire and use times (its family is the grant's). The foreign key is checked at the end of
/// the statement, when the family row exists.
pub(super) const INSERT_GRANT_WITH_REFRESH: &str = "WITH g AS (INSERT INTO grants (grant_id, \
    client_id, scopes, audiences, create_time_us, access_expire_time_us, refresh_expire_time_us, \
    revoke_time_us, token_generation) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
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
pub(super) const ROTATE_REFRESH: &str = "WITH claimed AS (UPDATE refresh_tokens \
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
pub(super) const CLAIM_REFRESH: &str = "UPDATE refresh_tokens SET use_time_us = $3 \
    WHERE token_hash = $1 AND use_time_us IS NULL AND expire_time_us > $3 \
    AND EXISTS (SELECT 1 FROM grants g JOIN clients c ON c.client_id = g.client_id \
        WHERE g.grant_id = refresh_tokens.grant_id AND g.client_id = $2 \
        AND g.revoke_time_us IS NULL AND g.token_generation = c.token_generation) \
    RETURNING grant_id";

pub(super) const EXTEND_GRANT: &str = "UPDATE grants SET \
    access_expire_time_us = CASE WHEN access_expire_time_us > $2 THEN access_expire_time_us ELSE $2 END, \
    refresh_expire_time_us = CASE WHEN refresh_expire_time_us > $3 THEN refresh_expire_time_us ELSE $3 END \
    WHERE grant_id = $1 AND revoke_time_us IS NULL";

pub(super) const SELECT_GRANT: &str = "SELECT * FROM grants WHERE grant_id = $1";

pub(super) const SELECT_REFRESH: &str = "SELECT * FROM refresh_tokens WHERE token_hash = $1";

pub(super) const REVOKE_GRANT: &str = "UPDATE grants SET revoke_time_us = $2 \
    WHERE grant_id = $1 AND revoke_time_us IS NULL RETURNING client_id, access_expire_time_us";

pub(super) const INSERT_REVOCATION: &str = "INSERT INTO revocations \
    (kind, subject, client_id, expire_time_us, create_time_us) VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT DO NOTHING";

pub(super) const INSERT_OPAQUE: &str = "INSERT INTO opaque_tokens \
    (token_hash, jti, client_id, claims, expire_time_us) VALUES ($1, $2, $3, $4, $5)";

pub(super) const SELECT_OPAQUE: &str = "SELECT * FROM opaque_tokens WHERE token_hash = $1";

pub(super) const DELETE_OPAQUE: &str = "DELETE FROM opaque_tokens WHERE token_hash = $1";

pub(super) const PURGE_REVOCATIONS: &str = "DELETE FROM revocations WHERE expire_time_us <= $1";
pub(super) const PURGE_CHANGES: &str = "DELETE FROM changes WHERE create_time_us < $1";
pub(super) const PURGE_OPAQUE: &str = "DELETE FROM opaque_tokens WHERE expire_time_us <= $1";
/// Only unspent ones: a spent token is kept as long as its family, so presenting it again is
/// always detected as reuse.
pub(super) const PURGE_REFRESH: &str =
    "DELETE FROM refresh_tokens WHERE expire_time_us <= $1 AND use_time_us IS NULL";
/// A family goes once its refresh tokens and its access tokens have all expired (and with it
/// any spent tokens kept for reuse detection).
pub(super) const PURGE_GRANTS: &str = "DELETE FROM grants \
    WHERE refresh_expire_time_us <= $1 AND access_expire_time_us <= $1";

pub(super) const CLIENT_EXISTS: &str = "SELECT COUNT(*) FROM clients WHERE client_id = $1";

pub(super) const DELETE_CLIENT: &str = "DELETE FROM clients WHERE client_id = $1";

pub(super) const LIVE_SECRET: &str = "SELECT hash, expire_time_us FROM client_secrets \
    WHERE client_id = $1 AND selector = $2 AND (expire_time_us IS NULL OR expire_time_us > $3) \
    ORDER BY create_time_us DESC LIMIT 1";

/// Takes the client's row lock first, so concurrent rotations of one client run one after the
/// other (each then sees and expires the secret the other added).
pub(super) const LOCK_CLIENT: &str =
    "UPDATE clients SET client_id = client_id WHERE client_id = $1";

pub(super) const LIVE_SECRETS: &str = "SELECT hash FROM client_secrets \
    WHERE client_id = $1 AND (expire_time_us IS NULL OR expire_time_us > $2) \
    ORDER BY create_time_us DESC";

/// Shortens the life of every live secret; never lengthens one.
pub(super) const EXPIRE_SECRETS: &str = "UPDATE client_secrets SET expire_time_us = $2 \
    WHERE client_id = $1 AND (expire_time_us IS NULL OR expire_time_us > $2)";

/// Secrets that died before now are kept no longer than the next rotation.
pub(super) const PURGE_SECRETS: &str =
    "DELETE FROM client_secrets WHERE client_id = $1 AND expire_time_us <= $2";

pub(super) const TOUCH_CLIENT: &str = "UPDATE clients SET last_used_time_us = $2 \
    WHERE client_id = $1 AND (last_used_time_us IS NULL OR last_used_time_us < $2)";

pub(super) const INSERT_FIRST_KEY: &str = "INSERT INTO signing_keys (kid, algorithm, public_jwk, \
    private_key, kek_id, create_time_us, activate_time_us, retire_time_us) \
    SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE NOT EXISTS (SELECT 1 FROM signing_keys)";

/// Inserts a key only if `$9` is still the newest key: of several replicas rotating at once,
/// the first wins and the others insert nothing.
pub(super) const INSERT_ROTATED_KEY: &str = "INSERT INTO signing_keys (kid, algorithm, \
    public_jwk, private_key, kek_id, create_time_us, activate_time_us, retire_time_us) \
    SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE (SELECT kid FROM signing_keys \
    ORDER BY create_time_us DESC, kid DESC LIMIT 1) = $9";

pub(super) const RETIRE_KEY: &str = "UPDATE signing_keys SET retire_time_us = $2 WHERE kid = $1";

pub(super) const LIST_KEYS: &str =
    "SELECT * FROM signing_keys ORDER BY create_time_us DESC, kid DESC";

/// Implements the store traits for a store struct with a `pool` field. `$key_lock` is an
/// optional statement run first in the transactions that add a signing key (the first one, or
/// a rotation), to serialise replicas doing so at the same moment (Postgres needs one; SQLite
/// serialises writers by itself, as the first statement of those transactions writes).
/// `$change_lock` serialises writers of the change log so that sequence order is commit order,
/// and `$notify` (bound to the new sequence number) wakes up the other replicas when the
/// transaction commits. `$cte_writes` says the database runs data-modifying CTEs (Postgres
/// does, SQLite does not): the durable token writes are then one statement each,
/// INSERT_GRANT_WITH_REFRESH and ROTATE_REFRESH, instead of a multi-statement transaction.
macro_rules! shared_store_impl {
    ($store:ty, $key_lock:expr, $change_lock:expr, $notify:expr, $cte_writes:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::ClientStore for $store {
            #[tracing::instrument(skip_all, fields(client_id = %client.client_id))]
            async fn insert_client(
                &self,
                client: &$crate::store::ClientRow,
                secret: &$crate::store::SecretRow,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                let query = sqlx::query($crate::store::sql::INSERT_CLIENT)
                    .bind(&client.client_id)
                    .bind(&client.tenant);
                bind_settings(query, client)
                    .bind(client.create_time_us)
                    .bind(client.update_time_us)
                    .bind(client.last_used_time_us)
                    .bind(client.revision)
                    .bind(client.token_generation)
                    .execute(&mut *tx)
                    .await?;
                insert_secret(&mut *tx, secret).await?;
                record_change(
                    &mut tx,
                    $crate::store::CHANGE_CLIENT,
                    &client.client_id,
                    0,
                    client.create_time_us,
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(skip(self))]
            async fn get_client(
                &self,
                client_id: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::ClientRow>> {
                Ok(sqlx::query_as($crate::store::sql::SELECT_CLIENT)
                    .bind(client_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(skip(self))]
            async fn list_clients(
                &self,
                tenant: Option<&str>,
                after: Option<&str>,
                limit: u32,
            ) -> $crate::store::StoreResult<Vec<$crate::store::ClientRow>> {
                Ok(sqlx::query_as($crate::store::sql::LIST_CLIENTS)
                    .bind(tenant)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?)
            }

            #[tracing::instrument(skip_all, fields(client_id = %client.client_id))]
            async fn update_client(
                &self,
                client: &$crate::store::ClientRow,
                expected_revision: i64,
                revoke_tokens: bool,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                let query = sqlx::query($crate::store::sql::UPDATE_CLIENT)
                    .bind(&client.client_id)
                    .bind(expected_revision);
                let done = bind_settings(query, client)
                    .bind(client.update_time_us)
                    .bind(client.revision)
                    .bind(i64::from(revoke_tokens))
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 1 {
                    if revoke_tokens {
                        revoke_client_tokens_in(&mut tx, &client.client_id, client.update_time_us)
                            .await?;
                    }
                    record_change(
                        &mut tx,
                        $crate::store::CHANGE_CLIENT,
                        &client.client_id,
                        0,
                        client.update_time_us,
                    )
                    .await?;
                    tx.commit().await?;
                    return Ok(());
                }
                drop(tx);
                let (count,): (i64,) = sqlx::query_as($crate::store::sql::CLIENT_EXISTS)
                    .bind(&client.client_id)
                    .fetch_one(&self.pool)
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
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query($crate::store::sql::DELETE_CLIENT)
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                record_change(&mut tx, $crate::store::CHANGE_CLIENT, client_id, 0, now_us).await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(skip(self))]
            async fn revoke_client_tokens(
                &self,
                client_id: &str,
                now_us: i64,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query($crate::store::sql::BUMP_GENERATION)
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                revoke_client_tokens_in(&mut tx, client_id, now_us).await?;
                record_change(&mut tx, $crate::store::CHANGE_CLIENT, client_id, 0, now_us).await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(skip(self, selector))]
            async fn live_secret(
                &self,
                client_id: &str,
                selector: &str,
                now_us: i64,
            ) -> $crate::store::StoreResult<Option<$crate::store::LiveSecret>> {
                Ok(sqlx::query_as($crate::store::sql::LIVE_SECRET)
                    .bind(client_id)
                    .bind(selector)
                    .bind(now_us)
                    .fetch_optional(&self.pool)
                    .await?)
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
                    .fetch_all(&self.pool)
                    .await?)
            }

            #[tracing::instrument(skip_all, fields(client_id = %secret.client_id))]
            async fn rotate_secret(
                &self,
                secret: &$crate::store::SecretRow,
                expire_us: i64,
            ) -> $crate::store::StoreResult<()> {
                // The first statement writes (the client's row lock), so Postgres serialises
                // concurrent rotations of one client and SQLite takes its write lock at once.
                let mut tx = self.pool.begin().await?;
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
                record_change(
                    &mut tx,
                    $crate::store::CHANGE_CLIENT,
                    &secret.client_id,
                    0,
                    secret.create_time_us,
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(skip(self))]
            async fn touch_client(
                &self,
                client_id: &str,
                at_us: i64,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query($crate::store::sql::TOUCH_CLIENT)
                    .bind(client_id)
                    .bind(at_us)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::KeyStore for $store {
            #[tracing::instrument(skip_all, fields(kid = %key.kid))]
            async fn insert_first_key(
                &self,
                key: &$crate::store::KeyRow,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let lock: Option<&str> = $key_lock;
                if let Some(lock) = lock {
                    sqlx::query(lock).execute(&mut *tx).await?;
                }
                let done = bind_key(sqlx::query($crate::store::sql::INSERT_FIRST_KEY), key)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(skip(self))]
            async fn list_keys(&self) -> $crate::store::StoreResult<Vec<$crate::store::KeyRow>> {
                Ok(sqlx::query_as($crate::store::sql::LIST_KEYS)
                    .fetch_all(&self.pool)
                    .await?)
            }

            #[tracing::instrument(skip_all, fields(kid = %key.kid, newest_kid = %newest_kid))]
            async fn insert_rotated_key(
                &self,
                key: &$crate::store::KeyRow,
                newest_kid: &str,
                retire: &[(String, i64)],
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let lock: Option<&str> = $key_lock;
                if let Some(lock) = lock {
                    sqlx::query(lock).execute(&mut *tx).await?;
                }
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
                record_change(
                    &mut tx,
                    $crate::store::CHANGE_KEYS,
                    &key.kid,
                    0,
                    key.create_time_us,
                )
                .await?;
                tx.commit().await?;
                Ok(true)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::TokenStore for $store {
            #[tracing::instrument(skip_all, fields(grant_id = %grant.grant_id))]
            async fn insert_grant(
                &self,
                grant: &$crate::store::GrantRow,
                first: &$crate::store::RefreshRow,
            ) -> $crate::store::StoreResult<()> {
                let cte_writes: bool = $cte_writes;
                if cte_writes {
                    let query = sqlx::query($crate::store::sql::INSERT_GRANT_WITH_REFRESH);
                    bind_grant(query, grant)
                        .bind(&first.token_hash)
                        .bind(first.create_time_us)
                        .bind(first.expire_time_us)
                        .bind(first.use_time_us)
                        .execute(&self.pool)
                        .await?;
                    return Ok(());
                }
                let mut tx = self.pool.begin().await?;
                bind_grant(sqlx::query($crate::store::sql::INSERT_GRANT), grant)
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
                successor: &$crate::store::RefreshRow,
                access_expire_us: i64,
                now_us: i64,
            ) -> $crate::store::StoreResult<$crate::store::RefreshClaim> {
                let cte_writes: bool = $cte_writes;
                if cte_writes {
                    let grant: Option<$crate::store::GrantRow> =
                        sqlx::query_as($crate::store::sql::ROTATE_REFRESH)
                            .bind(old_hash)
                            .bind(client_id)
                            .bind(now_us)
                            .bind(&successor.token_hash)
                            .bind(successor.create_time_us)
                            .bind(successor.expire_time_us)
                            .bind(access_expire_us)
                            .fetch_optional(&self.pool)
                            .await?;
                    return Ok(match grant {
                        Some(grant) => $crate::store::RefreshClaim::Rotated(grant),
                        None => $crate::store::RefreshClaim::Rejected(
                            self.find_refresh(old_hash).await?,
                        ),
                    });
                }
                // The claim is the transaction's first statement, a write: Postgres row-locks
                // the token (a concurrent claim waits, then finds it spent) and SQLite takes
                // its write lock at once.
                let mut tx = self.pool.begin().await?;
                let claimed: Option<String> = sqlx::query_scalar($crate::store::sql::CLAIM_REFRESH)
                    .bind(old_hash)
                    .bind(client_id)
                    .bind(now_us)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(grant_id) = claimed else {
                    drop(tx);
                    return Ok($crate::store::RefreshClaim::Rejected(
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
                    return Ok($crate::store::RefreshClaim::Rejected(
                        self.find_refresh(old_hash).await?,
                    ));
                }
                let grant: $crate::store::GrantRow =
                    sqlx::query_as($crate::store::sql::SELECT_GRANT)
                        .bind(&grant_id)
                        .fetch_one(&mut *tx)
                        .await?;
                tx.commit().await?;
                Ok($crate::store::RefreshClaim::Rotated(grant))
            }

            #[tracing::instrument(skip_all)]
            async fn find_refresh(
                &self,
                token_hash: &str,
            ) -> $crate::store::StoreResult<
                Option<($crate::store::RefreshRow, $crate::store::GrantRow)>,
            > {
                let token: Option<$crate::store::RefreshRow> =
                    sqlx::query_as($crate::store::sql::SELECT_REFRESH)
                        .bind(token_hash)
                        .fetch_optional(&self.pool)
                        .await?;
                let Some(token) = token else {
                    return Ok(None);
                };
                let grant: Option<$crate::store::GrantRow> =
                    sqlx::query_as($crate::store::sql::SELECT_GRANT)
                        .bind(&token.grant_id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(grant.map(|g| (token, g)))
            }

            #[tracing::instrument(skip(self))]
            async fn revoke_grant(
                &self,
                grant_id: &str,
                leeway_us: i64,
                now_us: i64,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
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
                    .bind($crate::store::CHANGE_GRANT)
                    .bind(grant_id)
                    .bind(&client_id)
                    .bind(expire_us)
                    .bind(now_us)
                    .execute(&mut *tx)
                    .await?;
                record_change(
                    &mut tx,
                    $crate::store::CHANGE_GRANT,
                    grant_id,
                    expire_us,
                    now_us,
                )
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(skip_all, fields(jti = %token.jti))]
            async fn insert_opaque(
                &self,
                token: &$crate::store::OpaqueRow,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query($crate::store::sql::INSERT_OPAQUE)
                    .bind(&token.token_hash)
                    .bind(&token.jti)
                    .bind(&token.client_id)
                    .bind(&token.claims)
                    .bind(token.expire_time_us)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(skip_all)]
            async fn find_opaque(
                &self,
                token_hash: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::OpaqueRow>> {
                Ok(sqlx::query_as($crate::store::sql::SELECT_OPAQUE)
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await?)
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
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query($crate::store::sql::INSERT_REVOCATION)
                    .bind($crate::store::CHANGE_TOKEN)
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
                record_change(&mut tx, $crate::store::CHANGE_TOKEN, jti, expire_us, now_us).await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(skip(self))]
            async fn purge(
                &self,
                now_us: i64,
                changes_before_us: i64,
            ) -> $crate::store::StoreResult<$crate::store::PurgeCounts> {
                let run = |sql: &'static str, at: i64| {
                    let pool = self.pool.clone();
                    async move {
                        Ok::<u64, $crate::store::StoreError>(
                            sqlx::query(sql)
                                .bind(at)
                                .execute(&pool)
                                .await?
                                .rows_affected(),
                        )
                    }
                };
                Ok($crate::store::PurgeCounts {
                    revocations: run($crate::store::sql::PURGE_REVOCATIONS, now_us).await?,
                    changes: run($crate::store::sql::PURGE_CHANGES, changes_before_us).await?,
                    opaque_tokens: run($crate::store::sql::PURGE_OPAQUE, now_us).await?,
                    refresh_tokens: run($crate::store::sql::PURGE_REFRESH, now_us).await?,
                    grants: run($crate::store::sql::PURGE_GRANTS, now_us).await?,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::ChangeStore for $store {
            async fn last_change_seq(&self) -> $crate::store::StoreResult<i64> {
                Ok(sqlx::query_scalar($crate::store::sql::LAST_CHANGE)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn changes_since(
                &self,
                seq: i64,
                limit: u32,
            ) -> $crate::store::StoreResult<Vec<$crate::store::ChangeRow>> {
                Ok(sqlx::query_as($crate::store::sql::CHANGES_SINCE)
                    .bind(seq)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn live_revocations(
                &self,
                now_us: i64,
                after: Option<(&str, &str)>,
                limit: u32,
            ) -> $crate::store::StoreResult<Vec<$crate::store::RevocationRow>> {
                let (kind, subject) = after.unwrap_or(("", ""));
                Ok(sqlx::query_as($crate::store::sql::LIVE_REVOCATIONS)
                    .bind(now_us)
                    .bind(kind)
                    .bind(subject)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn change_feed(
                &self,
            ) -> $crate::store::StoreResult<Box<dyn $crate::store::ChangeFeed>> {
                self.feed().await
            }
        }

        /// Appends to the change log inside `tx`; the commit publishes it.
        async fn record_change(
            tx: &mut sqlx::Transaction<'_, <$store as $crate::store::sql::HasDb>::Db>,
            kind: &str,
            subject: &str,
            expire_us: i64,
            now_us: i64,
        ) -> $crate::store::StoreResult<()> {
            let lock: Option<&str> = $change_lock;
            if let Some(lock) = lock {
                sqlx::query(lock).execute(&mut **tx).await?;
            }
            let seq: i64 = sqlx::query_scalar($crate::store::sql::INSERT_CHANGE)
                .bind(kind)
                .bind(subject)
                .bind(expire_us)
                .bind(now_us)
                .fetch_one(&mut **tx)
                .await?;
            let notify: Option<&str> = $notify;
            if let Some(notify) = notify {
                sqlx::query(notify)
                    .bind(seq.to_string())
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
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
            token: &$crate::store::RefreshRow,
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

        type Args = <<$store as $crate::store::sql::HasDb>::Db as sqlx::Database>::Arguments;
        type Query<'q> = sqlx::query::Query<'q, <$store as $crate::store::sql::HasDb>::Db, Args>;

        /// Binds a refresh family, `$1` to `$9` of INSERT_GRANT and INSERT_GRANT_WITH_REFRESH.
        fn bind_grant<'q>(query: Query<'q>, grant: &$crate::store::GrantRow) -> Query<'q> {
            use sqlx::types::Json;
            query
                .bind(&grant.grant_id)
                .bind(&grant.client_id)
                .bind(Json(&grant.scopes.0))
                .bind(Json(&grant.audiences.0))
                .bind(grant.create_time_us)
                .bind(grant.access_expire_time_us)
                .bind(grant.refresh_expire_time_us)
                .bind(grant.revoke_time_us)
                .bind(grant.token_generation)
        }

        /// Binds a client's settings, `$3` to `$14` of both INSERT_CLIENT and UPDATE_CLIENT.
        fn bind_settings<'q>(query: Query<'q>, client: &$crate::store::ClientRow) -> Query<'q> {
            use sqlx::types::Json;
            query
                .bind(&client.name)
                .bind(&client.description)
                .bind(Json(&client.scopes.0))
                .bind(Json(&client.audiences.0))
                .bind(Json(&client.roles.0))
                .bind(client.access_token_ttl_secs)
                .bind(client.refresh_token_ttl_secs)
                .bind(client.active)
                .bind(Json(&client.allowed_cidrs.0))
                .bind(client.rate_limit_per_minute)
                .bind(Json(&client.metadata.0))
                .bind(&client.access_token_format)
        }

        /// Binds a signing key's columns, `$1` to `$8` of INSERT_FIRST_KEY and INSERT_ROTATED_KEY.
        fn bind_key<'q>(query: Query<'q>, key: &'q $crate::store::KeyRow) -> Query<'q> {
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

        async fn insert_secret<'e, E>(
            executor: E,
            secret: &$crate::store::SecretRow,
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

pub(super) use shared_store_impl;

/// Names the sqlx database type of a store, for the helper functions the macro generates.
pub(super) trait HasDb {
    type Db: sqlx::Database;
}
