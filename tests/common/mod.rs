//! Databases for tests: a fresh SQLite file in a temp dir, or a fresh Postgres database created
//! on the server named by `TOKEND_TEST_DATABASE_URL` and dropped again when the test ends.

#![allow(dead_code)]

use std::fmt::Display;
use std::sync::Once;
use std::time::{Duration, Instant};

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        init_tracing();
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("tokend.db").display());
                Self {
                    url,
                    backend,
                    _dir: Some(dir),
                    pg: None,
                }
            }
            Backend::Postgres => {
                let admin = std::env::var("TOKEND_TEST_DATABASE_URL").expect(
                    "TOKEND_TEST_DATABASE_URL must point at a Postgres server for the Postgres suite \
                     (e.g. postgres://postgres@127.0.0.1:5432/postgres)",
                );
                let name = format!("tokend_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                    .await
                    .expect("connect to TOKEND_TEST_DATABASE_URL");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let url = replace_db_name(&admin, &name);
                Self {
                    url,
                    backend,
                    _dir: None,
                    pg: Some((admin, name)),
                }
            }
        }
    }

    /// A SQLite file at `path`, in a directory the test owns (a small tmpfs, say).
    pub fn sqlite_file(path: &std::path::Path) -> Self {
        init_tracing();
        Self {
            url: format!("sqlite://{}", path.display()),
            backend: Backend::Sqlite,
            _dir: None,
            pg: None,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg.take() else {
            return;
        };
        // Drop runs inside (or after) the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                    .await
                    .ok()?;
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].rfind('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{base}/{name}{query}")
}

/// Once per test process: the rustls provider, and logs only when `TEST_LOG` is set.
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The process's rustls default, as `main` installs it (the stock OAuth 2.0 client the
        // tests drive builds its TLS config from it).
        tokend::outbound::install_crypto_provider();
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing::subscriber::set_global_default(tokend::telemetry::subscriber(
                false,
                false,
                std::io::stderr,
                None,
            ));
        }
    });
}

/// Polls `check` until it yields `true`; fails the test, naming `what` it waited for, if that
/// has not happened within `within`. Returns how long it took (tests print such latencies).
///
/// Polls quickly at first (1 ms), then backs off to every 20 ms, so a latency measured this way
/// is exact to a few ms while a long wait does not hammer the server.
pub async fn eventually(
    what: impl Display,
    within: Duration,
    mut check: impl AsyncFnMut() -> bool,
) -> Duration {
    eventually_some(what, within, async || check().await.then_some(()))
        .await
        .1
}

/// Like [`eventually`], for a condition that yields a value once it holds: polls `check` until
/// it returns `Some`, and returns that value and how long it took.
pub async fn eventually_some<T>(
    what: impl Display,
    within: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> (T, Duration) {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(value) = check().await {
            return (value, start.elapsed());
        }
        assert!(
            start.elapsed() < within,
            "waited {within:?} for {what}, and it did not happen"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Expands a list of `async fn name(backend: Backend)` tests into one `#[tokio::test]` per
/// backend. Postgres tests are `#[ignore]`d (reported as skipped) unless
/// `TOKEND_TEST_DATABASE_URL` was set when the tests were built.
#[macro_export]
macro_rules! for_each_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(tokend_pg_tests), ignore = "SKIPPED: set TOKEND_TEST_DATABASE_URL to run the Postgres suite")]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

#[test]
fn url_database_is_replaced() {
    assert_eq!(
        replace_db_name(
            "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
            "x"
        ),
        "postgres://postgres@127.0.0.1:5432/x?sslmode=disable"
    );
    assert_eq!(replace_db_name("postgres://h", "x"), "postgres://h/x");
}
