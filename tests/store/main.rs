//! The store test suite, run against both backends: every behaviour the domain relies on, one
//! file per aggregate (quickwit's shared metastore suite). This file holds what they share:
//! a fresh migrated store and the rows the tests start from.

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

mod audit;
mod changes;
mod clients;
mod grants;
mod kek;
mod keys;
mod migrations;
mod policy;
mod replicas;
mod secrets;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{Backend, TestDb, eventually};
use tokend::store::{self, ClientRow, ConnectOptions, KeyRow, SecretRow, Store};

/// A migrated store on a fresh database of `backend`; keep the `TestDb` alive as long as it.
pub async fn open(backend: Backend) -> (TestDb, Arc<dyn Store>) {
    let db = TestDb::new(backend).await;
    let store = store::connect(&ConnectOptions {
        url: db.url.clone(),
        max_connections: 8,
    })
    .await
    .expect("connect");
    store.migrate().await.expect("migrate");
    (db, store)
}

/// Runs `sql` on the test database behind the store's back and returns the first column of
/// each row it gives, as text: for what only the stored values show.
pub async fn raw_text(db: &TestDb, sql: &'static str) -> Vec<String> {
    async fn run<DB: sqlx::Database>(url: &str, sql: &'static str) -> Vec<String>
    where
        for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
        for<'r> String: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
        for<'q> DB::Arguments: sqlx::IntoArguments<DB>,
        usize: sqlx::ColumnIndex<DB::Row>,
    {
        let mut conn = <DB::Connection as sqlx::Connection>::connect(url)
            .await
            .expect("connect");
        sqlx::query_scalar::<DB, String>(sql)
            .fetch_all(&mut conn)
            .await
            .expect("raw statement")
    }
    match db.backend() {
        Backend::Postgres => run::<sqlx::Postgres>(&db.url, sql).await,
        Backend::Sqlite => run::<sqlx::Sqlite>(&db.url, sql).await,
    }
}

/// An active client of `tenant` with one of each list field set, at revision 1.
pub fn client(id: &str, tenant: &str) -> ClientRow {
    ClientRow {
        client_id: id.into(),
        tenant: tenant.into(),
        name: format!("client {id}"),
        description: String::new(),
        scopes: vec!["read:*".into()],
        audiences: vec!["api".into()],
        roles: vec![],
        access_token_ttl_secs: 900,
        refresh_token_ttl_secs: 0,
        active: true,
        allowed_cidrs: vec!["10.0.0.0/8".into()],
        rate_limit_per_minute: 0,
        metadata: BTreeMap::from([("team".into(), "payments".into())]),
        create_time_us: 1_000,
        update_time_us: 1_000,
        last_used_time_us: None,
        revision: 1,
        access_token_format: "jwt".into(),
        exchange_audiences: Vec::new(),
        token_generation: 0,
    }
}

/// A secret of `client_id` created at `at`, its selector `sel-<id>` and hash `hash-<id>`.
pub fn secret(id: &str, client_id: &str, at: i64) -> SecretRow {
    SecretRow {
        secret_id: id.into(),
        client_id: client_id.into(),
        selector: format!("sel-{id}"),
        hash: format!("hash-{id}"),
        create_time_us: at,
        expire_time_us: None,
    }
}

/// An EdDSA signing key created and active at `at`, sealed under KEK `kek`.
pub fn key(kid: &str, at: i64) -> KeyRow {
    KeyRow {
        kid: kid.into(),
        algorithm: "EdDSA".into(),
        public_jwk: "{}".into(),
        private_key: vec![1, 2, 3],
        kek_id: "kek".into(),
        create_time_us: at,
        activate_time_us: at,
        retire_time_us: None,
    }
}

/// An audit event of tenant `a` by `admin`.
pub fn audit_row(id: &str, client_id: &str, time_us: i64, kind: &str) -> store::AuditRow {
    store::AuditRow {
        event_id: id.into(),
        time_us,
        tenant: "a".into(),
        client_id: client_id.into(),
        actor: "admin".into(),
        source_address: "192.0.2.1".into(),
        kind: kind.into(),
        details: BTreeMap::from([("fields".into(), "scopes".into())]),
        count: 1,
    }
}

/// Waits until a backend of the test database waits on a row lock (up to 20 s), so a test
/// knows its statement reached the lock rather than merely being slow to start.
pub async fn until_a_backend_waits_on_a_lock(url: &str) {
    use sqlx::Connection as _;
    let mut watcher = sqlx::PgConnection::connect(url).await.unwrap();
    let lock_waits = "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'";
    eventually(
        "a statement to wait on the lock",
        Duration::from_secs(20),
        async || {
            let waiting: i64 = sqlx::query_scalar(lock_waits)
                .fetch_one(&mut watcher)
                .await
                .unwrap();
            waiting > 0
        },
    )
    .await;
}
