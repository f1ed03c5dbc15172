//! The store test suite, run against both backends: every behaviour the domain relies on, one
//! file per aggregate (quickwit's shared metastore suite). This file holds what they share:
//! a fresh migrated store and the rows the tests start from.

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

mod assertions;
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
use time::OffsetDateTime;
use tokend::domain::clients::{ClientInput, ClientSpec, StoredSecret};
use tokend::domain::clock::from_micros;
use tokend::domain::keys::StoredKey;
use tokend::domain::{AuditEvent, AuditKind, Client, ClientId, TenantId};
use tokend::store::{self, ConnectOptions, Store};

/// Client ids the tests use (client ids are UUIDs; these sort in their numbering).
pub mod ids {
    pub const C1: &str = "00000000-0000-7000-8000-0000000000c1";
    pub const C2: &str = "00000000-0000-7000-8000-0000000000c2";
    pub const C3: &str = "00000000-0000-7000-8000-0000000000c3";
    pub const C4: &str = "00000000-0000-7000-8000-0000000000c4";
    /// A client that is never created.
    pub const GHOST: &str = "00000000-0000-7000-8000-00000000d0d0";
    /// Another client that is never created.
    pub const NOPE: &str = "00000000-0000-7000-8000-00000000e0e0";
}

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
pub fn client(id: &str, tenant: &str) -> Client {
    let input = ClientInput {
        tenant: tenant.into(),
        name: format!("client {id}"),
        scopes: vec!["read:*".into()],
        audiences: vec!["api".into()],
        access_token_ttl: Some(Duration::from_secs(900)),
        active: Some(true),
        allowed_cidrs: vec!["10.0.0.0/8".into()],
        metadata: BTreeMap::from([("team".into(), "payments".into())]),
        ..Default::default()
    };
    Client {
        id: ClientId::parse("client_id", id).expect("a client id"),
        tenant: TenantId::parse("tenant", tenant).expect("a tenant"),
        spec: ClientSpec::from_input(&input).expect("a valid client"),
        create_time: at(1_000),
        update_time: at(1_000),
        last_used_time: None,
        revision: 1,
        token_generation: 0,
    }
}

/// The time `us` microseconds after the epoch.
pub fn at(us: i64) -> OffsetDateTime {
    from_micros(us)
}

/// A secret of `client_id` created at `at`, its selector `sel-<id>` and hash `hash-<id>`.
pub fn secret(id: &str, client_id: &str, at: i64) -> StoredSecret {
    StoredSecret {
        secret_id: id.into(),
        client_id: client_id.into(),
        selector: format!("sel-{id}"),
        hash: format!("hash-{id}"),
        create_time_us: at,
        expire_time_us: None,
    }
}

/// An EdDSA signing key created and active at `at`, sealed under KEK `kek`.
pub fn key(kid: &str, at: i64) -> StoredKey {
    StoredKey {
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

/// An audit event of tenant `a` by `admin`, of `kind` (its stored name).
pub fn audit_row(id: &str, client_id: &str, time_us: i64, kind: &str) -> AuditEvent {
    AuditEvent {
        event_id: id.into(),
        time: at(time_us),
        tenant: "a".into(),
        client_id: client_id.into(),
        actor: "admin".into(),
        source_address: Some("192.0.2.1".parse().unwrap()),
        kind: AuditKind::parse(kind).expect("an audit kind"),
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
