//! The database goes away and comes back, through TCP proxies the test starts between each
//! replica and Postgres (the machine's Postgres itself is never touched). Two replicas, each
//! behind its own proxy, so one can be cut off while the other still writes: what the cut-off
//! replica missed must be applied when it reconnects, without a restart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokend::proto::client_service_client::ClientServiceClient;
use tokend::proto::introspection_service_client::IntrospectionServiceClient;
use tokend::proto::token_service_client::TokenServiceClient;
use tokend::proto::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::common::{Backend, TestDb, eventually};
use crate::helpers::*;
use crate::oauth_http::token_with_basic;

/// A TCP proxy to Postgres that the test can cut (every open connection is closed, new ones
/// are closed as soon as they are accepted: what a database host that went away looks like to
/// a client whose connections get reset) and restore.
struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    /// Bumped on every cut: connection tasks watching it drop both sockets.
    generation: watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let accepting = (cut.clone(), generation.clone());
        tokio::spawn(async move {
            let (cut, generation) = accepting;
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if cut.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cuts = generation.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Self {
            addr,
            cut,
            generation,
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by this proxy's.
    fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (authority, path) = rest.split_once('/').unwrap();
        let user = authority.rsplit_once('@').map(|(u, _)| format!("{u}@"));
        format!(
            "{scheme}://{}{}/{path}",
            user.unwrap_or_default(),
            self.addr
        )
    }
}

/// The Postgres server the test databases live on.
fn postgres_addr(url: &str) -> SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split('/').next().unwrap();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    let host_port = host_port.replace("localhost", "127.0.0.1");
    host_port
        .parse()
        .expect("TOKEND_TEST_DATABASE_URL host:port")
}

async fn health(channel: &Channel, service: &str) -> i32 {
    HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

/// Waits (at most 10 s) until `service` reports `status`; returns how long that took.
async fn until_health(channel: &Channel, service: &str, status: ServingStatus) -> Duration {
    eventually(
        format!("{service} to become {status:?}"),
        Duration::from_secs(10),
        async || health(channel, service).await == status as i32,
    )
    .await
}

/// What "at once" means for a write that cannot reach the database: the pool would wait 5 s
/// for a connection (its acquire timeout), and a replica that knows its database is down
/// answers without waiting. Only the wall clock can tell the two apart, so this bound stays.
const AT_ONCE: Duration = Duration::from_secs(1);

const TOKENS: &str = "tokend.v1.TokenService";
const CLIENTS: &str = "tokend.v1.ClientService";
const INTROSPECTION: &str = "tokend.v1.IntrospectionService";

/// The HTTP status of `GET path`.
async fn probe(addr: SocketAddr, path: &str) -> u16 {
    crate::oauth_http::http(addr, &format!("GET {path}"), &[], "")
        .await
        .status
}

async fn introspect_on(
    channel: &Channel,
    caller: &str,
    token: &str,
) -> Result<IntrospectResponse, tonic::Status> {
    IntrospectionServiceClient::new(channel.clone())
        .introspect(authed(
            IntrospectRequest {
                token: token.into(),
                ..Default::default()
            },
            caller,
        ))
        .await
        .map(|r| r.into_inner())
}

/// Replica A keeps its database; B is cut off, answers Introspect from memory, fails writes
/// fast, reports its write services NOT_SERVING, and after the cut heals applies the
/// revocation A made meanwhile and writes again. Then A is cut off for longer than its
/// `sync.max_staleness_secs`: it stops answering rather than trust an old deny list, and
/// recovers by itself too.
async fn replicas_ride_out_a_database_outage(backend: Backend) {
    assert_eq!(backend, Backend::Postgres, "a proxy to a database server");
    let target = postgres_addr(&std::env::var("TOKEND_TEST_DATABASE_URL").unwrap());
    let (pa, pb) = (Proxy::start(target).await, Proxy::start(target).await);
    let app = TestApp::spawn_with(backend, |s| {
        use secrecy::ExposeSecret as _;
        s.database.url = pa.url_for(s.database.url.expose_secret()).into();
        s.sync.poll_interval_ms = 100;
        s.sync.max_staleness_secs = 2;
    })
    .await;
    let b = Replica::start(&app, |s| {
        s.database.url = pb.url_for(&app.db.url).into();
        s.sync.poll_interval_ms = 100;
    })
    .await;
    let Acme {
        admin,
        introspector,
        creds,
        token: revoked,
    } = Acme::on(&app).await;
    let kept = app.token(&creds, &["read:b"]).await;
    for token in [&revoked, &kept] {
        assert!(
            introspect_on(&b.channel, &introspector, token)
                .await
                .unwrap()
                .active
        );
    }

    // B loses its database.
    pb.cut();
    let noticed = until_health(&b.channel, TOKENS, ServingStatus::NotServing).await;
    assert_eq!(
        health(&b.channel, CLIENTS).await,
        ServingStatus::NotServing as i32
    );
    assert_eq!(
        health(&b.channel, INTROSPECTION).await,
        ServingStatus::Serving as i32
    );
    assert_eq!(health(&b.channel, "").await, ServingStatus::Serving as i32);
    assert_eq!(
        health(&app.channel, TOKENS).await,
        ServingStatus::Serving as i32
    );

    // Introspect answers from memory...
    let start = Instant::now();
    let answer = introspect_on(&b.channel, &introspector, &kept)
        .await
        .unwrap();
    let from_memory = start.elapsed();
    assert!(answer.active);
    assert_eq!(answer.client_id, creds.client_id);

    // ...while writes fail at once: a new client, a token needing a database read (the secret
    // was verified on A, not B), the same over HTTP.
    let start = Instant::now();
    let err = create_client_on(&b.channel, &admin).await.unwrap_err();
    let write_failed_in = start.elapsed();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(write_failed_in < AT_ONCE, "{write_failed_in:?}");
    let start = Instant::now();
    let err = TokenServiceClient::new(b.channel.clone())
        .issue_token(IssueTokenRequest {
            client_id: creds.client_id.clone(),
            client_secret: creds.client_secret.clone(),
            scopes: vec!["read:c".into()],
            audience: vec![],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(start.elapsed() < AT_ONCE);
    let answer = token_with_basic(b.addr, &creds, "grant_type=client_credentials").await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.error(), "temporarily_unavailable");
    assert!(answer.head.contains("retry-after:"), "{}", answer.head);

    // A, which still has the database, revokes one token meanwhile.
    app.revoke(&creds, &revoked).await;
    assert!(!app.introspect(&introspector, &revoked).await.active);

    // The cut heals: B comes back by itself and has not missed the revocation.
    pb.restore();
    let restored = Instant::now();
    until_health(&b.channel, TOKENS, ServingStatus::Serving).await;
    let recovered = restored.elapsed();
    assert!(
        !introspect_on(&b.channel, &introspector, &revoked)
            .await
            .unwrap()
            .active
    );
    assert!(
        introspect_on(&b.channel, &introspector, &kept)
            .await
            .unwrap()
            .active
    );
    create_client_on(&b.channel, &admin).await.unwrap();
    let writes_back = restored.elapsed();

    // A loses its database for longer than it may answer from memory (2 s).
    pa.cut();
    until_health(&app.channel, TOKENS, ServingStatus::NotServing).await;
    assert!(app.introspect(&introspector, &kept).await.active);
    let stale = until_health(&app.channel, INTROSPECTION, ServingStatus::NotServing).await;
    // The plain-HTTP probes say the same: up, and not ready.
    assert_eq!(probe(app.addr, "/readyz").await, 503);
    assert_eq!(probe(app.addr, "/healthz").await, 200);
    let err = introspect_on(&app.channel, &introspector, &kept)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("sync.max_staleness_secs"), "{err:?}");
    // B, whose database is there, is unaffected.
    assert!(
        introspect_on(&b.channel, &introspector, &kept)
            .await
            .unwrap()
            .active
    );
    pa.restore();
    until_health(&app.channel, INTROSPECTION, ServingStatus::Serving).await;
    assert_eq!(probe(app.addr, "/readyz").await, 200);
    until_health(&app.channel, TOKENS, ServingStatus::Serving).await;
    assert!(app.introspect(&introspector, &kept).await.active);
    assert!(!app.introspect(&introspector, &revoked).await.active);

    eprintln!(
        "outage: cut noticed in {} ms; Introspect from memory {} us; a write failed in {} us; \
         after the cut healed, write services SERVING in {} ms and a write succeeded in {} ms; \
         Introspect refused {} ms after A noticed its cut (max_staleness 2 s)",
        noticed.as_millis(),
        from_memory.as_micros(),
        write_failed_in.as_micros(),
        recovered.as_millis(),
        writes_back.as_millis(),
        stale.as_millis(),
    );
    b.stop().await;
}

/// Tenant acme on a fresh server: an admin's and an introspector's tokens, a service client
/// and one token of it.
struct Acme {
    admin: String,
    introspector: String,
    creds: Creds,
    token: String,
}

impl Acme {
    async fn on(app: &TestApp) -> Self {
        let admin = app.admin("acme").await;
        let introspector = app.introspector("acme").await;
        let (_, creds) = app
            .create_client(&admin, client("acme", "svc", &["read:*"]))
            .await;
        let token = app.token(&creds, &["read:a"]).await;
        Self {
            admin,
            introspector,
            creds,
            token,
        }
    }
}

/// CreateClient through `channel`.
async fn create_client_on(channel: &Channel, admin: &str) -> Result<(), tonic::Status> {
    ClientServiceClient::new(channel.clone())
        .create_client(authed(
            CreateClientRequest {
                client: Some(client("acme", "during-outage", &["read:*"])),
            },
            admin,
        ))
        .await
        .map(|_| ())
}

/// Another process holds SQLite's write lock for longer than tokend waits for it (as `sqlite3`
/// in a shell, or a backup, would): writes answer UNAVAILABLE, Introspect still answers, and
/// once the lock goes writes succeed again on an intact file.
async fn a_locked_sqlite_file_gives_unavailable(backend: Backend) {
    use sqlx::Connection as _;
    assert_eq!(backend, Backend::Sqlite);
    let app = TestApp::spawn(backend).await;
    let Acme {
        admin,
        introspector,
        token,
        ..
    } = Acme::on(&app).await;
    let mut other = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let err = create_client_on(&app.channel, &admin).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(app.introspect(&introspector, &token).await.active);
    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
    create_client_on(&app.channel, &admin).await.unwrap();
    assert_integrity(&mut other).await;
}

async fn assert_integrity(conn: &mut sqlx::SqliteConnection) {
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(conn)
        .await
        .unwrap();
    assert_eq!(check, "ok");
}

/// The disk under the SQLite file fills up (a 4 MiB tmpfs, filled by the test): writes answer
/// UNAVAILABLE, not INTERNAL, Introspect still answers, and when space is freed writes succeed
/// on an intact file that lost nothing. Mounting needs root: elsewhere the test says it was
/// skipped (CI runs as root).
async fn a_full_disk_gives_unavailable(backend: Backend) {
    use sqlx::Connection as _;
    assert_eq!(backend, Backend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            std::env::var_os("TOKEND_TEST_REQUIRE_TMPFS").is_none(),
            "mounting a tmpfs failed, and this run requires the full-disk test"
        );
        eprintln!("SKIPPED: a_full_disk_gives_unavailable needs to mount a tmpfs (root)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(dir.path().to_owned());
    let db = TestDb::sqlite_file(&dir.path().join("tokend.db"));
    let url = db.url.clone();
    let app = TestApp::spawn_on(db, |_| {}).await;
    let Acme {
        admin,
        introspector,
        token,
        ..
    } = Acme::on(&app).await;

    // Fill what is left of the disk.
    let filler = dir.path().join("filler");
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let _ = file.write_all(&block[..4096]);
        let _ = file.sync_all();
    }
    let err = create_client_on(&app.channel, &admin).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(app.introspect(&introspector, &token).await.active);

    std::fs::remove_file(&filler).unwrap();
    create_client_on(&app.channel, &admin).await.unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    assert_integrity(&mut conn).await;
    let clients: i64 = sqlx::query_scalar("SELECT count(*) FROM clients")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    // The two bootstrapped, the service, and the one created after space was freed.
    assert_eq!(clients, 4);
    drop(conn);
    let mut app = app;
    app.stop().await.unwrap();
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_locked_sqlite_file_gives_unavailable() {
        super::a_locked_sqlite_file_gives_unavailable(crate::common::Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_gives_unavailable() {
        super::a_full_disk_gives_unavailable(crate::common::Backend::Sqlite).await
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(tokend_pg_tests),
        ignore = "SKIPPED: set TOKEND_TEST_DATABASE_URL to run the Postgres suite"
    )]
    async fn replicas_ride_out_a_database_outage() {
        super::replicas_ride_out_a_database_outage(crate::common::Backend::Postgres).await
    }
}
