//! Criterion micro-benchmarks of the functions on tokend's hot paths, through the domain's
//! public API over a real (temporary SQLite) store: no gRPC, no network.
//!
//! `cargo bench --bench hot_paths`; BENCHMARKS.md has the figures.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use secrecy::SecretString;
use tokend::config::Settings;
use tokend::domain::{
    Caller, ClientAuth, ClientInput, ClientSecret, Grant, GrantRequest, HashParams, ScopeSet,
    SecretHasher, SystemClock, Tokend,
};
use tokio::runtime::Runtime;

struct Fixture {
    rt: Runtime,
    tokend: Tokend,
    /// Same database, verified-token cache off: every call verifies the signature.
    uncached: Tokend,
    client_id: String,
    secret: String,
    token: String,
    _dir: tempfile::TempDir,
}

fn settings(dir: &tempfile::TempDir) -> Settings {
    let mut s = Settings::default();
    let path = dir.path().join("bench.db");
    s.database.url = SecretString::from(format!("sqlite://{}", path.display()));
    s.keys.kek = Some(SecretString::from(
        "q2K5Q7m0sV9pZ8c3Xo4eW1tY6uI0oP3aS5dF7gH9jK0=",
    ));
    s
}

fn fixture() -> Fixture {
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = settings(&dir);
    let (tokend, uncached, client_id, secret, token) = rt.block_on(async {
        let store = tokend::server::open_store(&s.resolve().unwrap().database)
            .await
            .unwrap();
        let open = |entries| {
            // Resolved for each replica: each takes its own KEKs.
            let resolved = s.resolve().unwrap();
            let mut config = resolved.domain();
            config.caches.token_entries = entries;
            // The caller check is a second verification of the same kind; measure one.
            config.introspection_requires_auth = false;
            Tokend::open(
                store.clone(),
                resolved.keys.keks.load().unwrap(),
                config,
                Arc::new(SystemClock),
            )
        };
        let tokend = open(100_000).await.unwrap();
        let input = ClientInput {
            name: "bench".into(),
            tenant: "acme".into(),
            scopes: vec!["read:*".into(), "write:orders".into()],
            ..ClientInput::default()
        };
        let (client, secret) = tokend
            .clients
            .create(&Caller::operator(), &input)
            .await
            .unwrap();
        let secret = secret.expect("a client with the default methods has a secret");
        let request = GrantRequest {
            client: ClientAuth::secret(
                client.id.to_string(),
                secret.expose(),
                Some(std::net::Ipv4Addr::LOCALHOST.into()),
            ),
            scopes: vec!["read:invoices".into()],
            grant: Grant::ClientCredentials { audience: vec![] },
        };
        let token = tokend.tokens.grant(&request).await.unwrap().access_token;
        let uncached = open(0).await.unwrap();
        (
            tokend,
            uncached,
            client.id.to_string(),
            secret.expose().to_owned(),
            token,
        )
    });
    Fixture {
        rt,
        tokend,
        uncached,
        client_id,
        secret,
        token,
        _dir: dir,
    }
}

fn introspection(c: &mut Criterion) {
    let f = fixture();
    let mut group = c.benchmark_group("introspect (domain)");
    group.bench_function("JWT, verified-token cache hit", |b| {
        b.iter(|| {
            f.rt.block_on(
                f.tokend
                    .introspection
                    .introspect(None, black_box(&f.token), None, None),
            )
            .unwrap()
            .unwrap()
        })
    });
    group.bench_function("JWT, signature verified (cache off)", |b| {
        b.iter(|| {
            f.rt.block_on(f.uncached.introspection.introspect(
                None,
                black_box(&f.token),
                None,
                None,
            ))
            .unwrap()
            .unwrap()
        })
    });
    group.finish();
    c.bench_function("revocation lookup (deny list, jti + family)", |b| {
        let registry = &f.tokend.registry;
        b.iter(|| registry.is_revoked(black_box("AAAAAAAAAAAAAAAAAAAAAA"), Some("gid")))
    });
    c.bench_function("authenticate (verified-secret cache hit)", |b| {
        b.iter(|| {
            let who = ClientAuth::secret(&f.client_id, black_box(&f.secret), None);
            f.rt.block_on(f.tokend.tokens.authenticate(&who)).unwrap()
        })
    });
    c.bench_function("token_key (SHA-256 of the token)", |b| {
        b.iter(|| tokend::domain::token_key(black_box(&f.token)))
    });
}

fn scopes(c: &mut Criterion) {
    let allowed =
        ScopeSet::parse("scopes", &["read:*", "write:orders", "admin:billing:*"]).unwrap();
    let requested = ScopeSet::parse("scopes", &["read:invoices", "write:orders"]).unwrap();
    c.bench_function("scope matching (grant 2 of 3, wildcards)", |b| {
        b.iter(|| black_box(&allowed).grant(black_box(&requested)).unwrap())
    });
    c.bench_function("scope claim parsing (2 scopes)", |b| {
        b.iter(|| ScopeSet::parse_claim(black_box("read:invoices write:orders")).unwrap())
    });
}

/// The cost of a cold `IssueToken`: one argon2id verification at the default parameters.
fn argon2(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let hasher = SecretHasher::new(HashParams::default(), 1).unwrap();
    let secret = ClientSecret::generate().unwrap();
    let hash = rt.block_on(hasher.hash(&secret)).unwrap();
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(10);
    group.bench_function("verify (19 MiB, t=2, p=1: the defaults)", |b| {
        b.iter(|| {
            assert!(
                rt.block_on(hasher.verify(&secret, Some(hash.clone())))
                    .unwrap()
            )
        })
    });
    group.finish();
}

criterion_group!(benches, introspection, scopes, argon2);
criterion_main!(benches);
