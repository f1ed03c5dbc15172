//! The brute-force lockout over gRPC: guesses locked per client_id, per address and per
//! client at an address it is trusted at; the honest callers that share the guesser's address
//! (as every caller behind a mesh sidecar does) keep working; all of it across replicas.
//! Calls come from chosen loopback addresses (127.0.0.x).

use std::time::Duration;

use tokend::proto::token_service_client::TokenServiceClient;
use tokend::proto::*;
use tonic::{Code, Request};

use crate::common::{Backend, eventually};
use crate::helpers::*;
use crate::policy::{assert_rate_limited, passes, wrong};

async fn lockout_stops_guessing_but_not_the_honest_client(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.secrets.max_failures = 3;
        s.secrets.failure_window_secs = 60;
    })
    .await;
    let [creds, other] = acme_clients(&app, ["bot", "other"]).await;
    let mut honest = app.tokens();
    honest.issue_token(issue_request(&creds)).await.unwrap();

    let mut attacker = app.tokens_from("127.0.0.2").await;
    for _ in 0..3 {
        let err = attacker.issue_token(wrong(&creds)).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
    }
    let err = attacker.issue_token(wrong(&creds)).await.unwrap_err();
    assert_eq!(assert_rate_limited(&err), Duration::from_secs(60));
    // A right guess is refused too, or the lockout would tell the attacker it was right.
    let err = attacker
        .issue_token(issue_request(&creds))
        .await
        .unwrap_err();
    assert_rate_limited(&err);
    // The address is locked for every client, RevokeToken included.
    let err = attacker
        .issue_token(issue_request(&other))
        .await
        .unwrap_err();
    assert_rate_limited(&err);
    let revoke = RevokeTokenRequest {
        client_id: other.client_id.clone(),
        client_secret: other.client_secret.clone(),
        token: "x".into(),
        token_type_hint: String::new(),
        ..Default::default()
    };
    assert_rate_limited(&attacker.revoke_token(revoke).await.unwrap_err());
    // The honest client keeps working from the address it authenticated from...
    honest
        .issue_token(issue_request(&creds))
        .await
        .expect("the honest client's known address");
    // ...a new address of the locked client waits for the window, no longer.
    let mut elsewhere = app.tokens_from("127.0.0.3").await;
    let err = elsewhere
        .issue_token(issue_request(&creds))
        .await
        .unwrap_err();
    assert!(assert_rate_limited(&err) <= Duration::from_secs(60));
    assert_eq!(passes(&mut elsewhere, &other, 1).await, 1);
    app.advance(Duration::from_secs(61));
    elsewhere
        .issue_token(issue_request(&creds))
        .await
        .expect("the client lock ended with the window");
    // The attacker's next lock lasts twice as long.
    for _ in 0..3 {
        let err = attacker.issue_token(wrong(&creds)).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
    }
    let err = attacker.issue_token(wrong(&creds)).await.unwrap_err();
    assert_eq!(assert_rate_limited(&err), Duration::from_secs(120));
}

async fn concurrent_guesses_stop_at_the_lock(backend: Backend) {
    // One hashing thread, as on a 2-core replica, or four at once: either way every guess is
    // admitted before the first verification ends.
    for threads in [1, 4] {
        let app = TestApp::spawn_with(backend, |s| {
            s.secrets.max_failures = 3;
            s.secrets.max_concurrent_hashes = threads;
            s.secrets.memory_kib = 16 * 1024;
            s.secrets.iterations = 2;
        })
        .await;
        let [creds] = acme_clients(&app, ["bot"]).await;
        let channel = app.channel_from("127.0.0.2").await;
        let guesses = (0..16).map(|_| {
            let mut tokens = TokenServiceClient::new(channel.clone());
            let request = wrong(&creds);
            async move { tokens.issue_token(request).await.unwrap_err().code() }
        });
        let codes = futures::future::join_all(guesses).await;
        let verified = codes
            .iter()
            .filter(|c| **c == Code::Unauthenticated)
            .count();
        let refused = codes
            .iter()
            .filter(|c| **c == Code::ResourceExhausted)
            .count();
        // Exactly `max_failures` answers: guesses still queued for a hashing thread when the
        // lock began are refused there (no argon2 spent), and one verified after it began is
        // refused too, not answered.
        assert_eq!(
            (verified, refused),
            (3, 13),
            "{threads} hashing threads: {codes:?}"
        );
    }
}

async fn two_replicas_share_one_lockout(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.secrets.max_failures = 4;
        s.sync.poll_interval_ms = 50;
    })
    .await;
    let [creds, other, probe] = acme_clients(&app, ["bot", "other", "probe"]).await;
    let replica = Replica::start(&app, |_| {}).await;
    // Failures count for the deployment, wherever they land: two here, two on B lock.
    let mut attacker = app.tokens_from("127.0.0.2").await;
    let mut attacker_b = TokenServiceClient::new(channel_from(replica.addr, "127.0.0.2").await);
    for on_b in [false, false, true, true] {
        let tokens = if on_b { &mut attacker_b } else { &mut attacker };
        let err = tokens.issue_token(wrong(&creds)).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
    }
    assert_rate_limited(&attacker_b.issue_token(wrong(&creds)).await.unwrap_err());
    // The lock B began reaches A through the change log: the address is refused there too,
    // for another client, even with its right secret. (Probed with wrong secrets for a client
    // of its own: a right one answered before the lock arrived would make the client trusted
    // at the address, and wrong ones count against the client they name.)
    let on_a = app.channel_from("127.0.0.2").await;
    eventually(
        "replica A to refuse the address",
        Duration::from_secs(10),
        || {
            let mut a = TokenServiceClient::new(on_a.clone());
            let request = wrong(&probe);
            async move {
                a.issue_token(request)
                    .await
                    .is_err_and(|s| s.code() == Code::ResourceExhausted)
            }
        },
    )
    .await;
    let mut a = TokenServiceClient::new(on_a.clone());
    assert_rate_limited(&a.issue_token(issue_request(&other)).await.unwrap_err());
    replica.stop().await;
    // And a replica that starts now learns it at load.
    let app = app.restart().await;
    let mut attacker = app.tokens_from("127.0.0.2").await;
    assert_rate_limited(
        &attacker
            .issue_token(issue_request(&other))
            .await
            .unwrap_err(),
    );
    let mut fresh = app.tokens_from("127.0.0.3").await;
    assert_eq!(passes(&mut fresh, &other, 1).await, 1);
}

/// Behind a mesh sidecar every caller reaches tokend from one address. A client throwing
/// wrong secrets from it (an attacker, or a deployment with a stale secret) gets its
/// `max_failures` answers and no more, and locks itself and strangers out there; the clients
/// that authenticated from the address before keep every call.
async fn a_shared_address_locks_the_guesser_not_its_neighbours(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.secrets.max_failures = 3;
        s.secrets.failure_window_secs = 60;
    })
    .await;
    let [orders, billing, search, stale, stranger] =
        acme_clients(&app, ["orders", "billing", "search", "stale", "new"]).await;
    let neighbours = [orders, billing, search];
    let mut sidecar = app.tokens_from("127.0.0.6").await;
    for creds in neighbours.iter().chain([&stale]) {
        sidecar
            .issue_token(issue_request(creds))
            .await
            .expect("a first call from the shared address");
    }
    let (mut answers, mut honest_ok, mut honest_calls) = (Vec::new(), 0, 0);
    for _ in 0..10 {
        answers.push(sidecar.issue_token(wrong(&stale)).await.unwrap_err().code());
        for creds in &neighbours {
            honest_calls += 1;
            honest_ok += usize::from(sidecar.issue_token(issue_request(creds)).await.is_ok());
        }
    }
    assert_eq!(honest_ok, honest_calls, "every neighbour's call passed");
    let verified = answers
        .iter()
        .filter(|c| **c == Code::Unauthenticated)
        .count();
    assert_eq!(
        verified, 3,
        "three guesses verified, then locked: {answers:?}"
    );
    assert!(
        answers[3..].iter().all(|c| *c == Code::ResourceExhausted),
        "{answers:?}"
    );
    // The guessed client is locked at the address, right secret or not, and elsewhere.
    assert_rate_limited(
        &sidecar
            .issue_token(issue_request(&stale))
            .await
            .unwrap_err(),
    );
    let mut elsewhere = app.tokens_from("127.0.0.7").await;
    assert_rate_limited(
        &elsewhere
            .issue_token(issue_request(&stale))
            .await
            .unwrap_err(),
    );
    // A client that never authenticated from the locked address waits for the lock (the
    // trade-off), and guessing it from there gets no answer.
    assert_rate_limited(
        &sidecar
            .issue_token(issue_request(&stranger))
            .await
            .unwrap_err(),
    );
    assert_rate_limited(&sidecar.issue_token(wrong(&stranger)).await.unwrap_err());
    assert_eq!(passes(&mut elsewhere, &stranger, 1).await, 1);
    app.advance(Duration::from_secs(61));
    sidecar
        .issue_token(issue_request(&stale))
        .await
        .expect("the pair's lock lasts one window");
    sidecar
        .issue_token(issue_request(&stranger))
        .await
        .expect("the address lock ended");
}

/// Trust is the deployment's, not a replica's: a client that authenticated from an address
/// through replica A keeps working there through replica B while B sees the address locked.
async fn replicas_share_trusted_addresses(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.secrets.max_failures = 3;
        s.sync.poll_interval_ms = 50;
    })
    .await;
    let [honest, target] = acme_clients(&app, ["honest", "target"]).await;
    let replica = Replica::start(&app, |_| {}).await;
    let mut on_a = app.tokens_from("127.0.0.6").await;
    on_a.issue_token(issue_request(&honest))
        .await
        .expect("trust earned on A");
    let mut on_b = TokenServiceClient::new(channel_from(replica.addr, "127.0.0.6").await);
    for _ in 0..3 {
        let err = on_b.issue_token(wrong(&target)).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
    }
    assert_rate_limited(&on_b.issue_token(issue_request(&target)).await.unwrap_err());
    eventually(
        "replica B to know the honest client at the locked address",
        Duration::from_secs(10),
        || {
            let mut b = on_b.clone();
            let request = issue_request(&honest);
            async move { b.issue_token(request).await.is_ok() }
        },
    )
    .await;
    replica.stop().await;
    // A replica that starts now loads the trust with the locks.
    let app = app.restart().await;
    let mut restarted = app.tokens_from("127.0.0.6").await;
    restarted
        .issue_token(issue_request(&honest))
        .await
        .expect("trust loaded at start");
    assert_rate_limited(
        &restarted
            .issue_token(issue_request(&target))
            .await
            .unwrap_err(),
    );
}

/// A trusted proxy that writes an unreadable `x-forwarded-for` hides the caller's address;
/// such calls share one key for the lockout and the per-address limit instead of escaping
/// both (allow-lists already refuse them).
async fn unreadable_forwarded_addresses_are_limited_together(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.server.trusted_proxies = vec!["127.0.0.1/32".into()];
        s.server.token_endpoint_rate_per_minute = 0;
        s.secrets.max_failures = 3;
    })
    .await;
    let [target, other] = acme_clients(&app, ["t", "o"]).await;
    let garbled = |creds: &Creds, secret_ok: bool, xff: &str| {
        let body = if secret_ok {
            issue_request(creds)
        } else {
            wrong(creds)
        };
        let mut request = Request::new(body);
        request
            .metadata_mut()
            .insert("x-forwarded-for", xff.parse().unwrap());
        request
    };
    let mut proxy = app.tokens_from("127.0.0.1").await;
    // Each guess carries different garbage: still one caller as far as the lockout goes.
    let mut codes = Vec::new();
    for junk in ["not-an-ip", "999.1.1.1", "x, y", "::zz", "[bad]:1"] {
        codes.push(
            proxy
                .issue_token(garbled(&target, false, junk))
                .await
                .unwrap_err()
                .code(),
        );
    }
    assert_eq!(
        codes,
        [
            Code::Unauthenticated,
            Code::Unauthenticated,
            Code::Unauthenticated,
            Code::ResourceExhausted,
            Code::ResourceExhausted
        ]
    );
    // Another client behind the same unreadable header waits for the lock too (it never
    // authenticated from there); readable addresses behind the proxy are not affected.
    let err = proxy
        .issue_token(garbled(&other, true, "garbage"))
        .await
        .unwrap_err();
    assert_rate_limited(&err);
    proxy
        .issue_token(garbled(&other, true, "192.0.2.7"))
        .await
        .expect("a readable address is its own");
}

/// The per-address limit holds for callers behind an unreadable `x-forwarded-for` too.
async fn unreadable_forwarded_addresses_share_the_address_limit(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.server.trusted_proxies = vec!["127.0.0.1/32".into()];
        s.server.token_endpoint_rate_per_minute = 2;
    })
    .await;
    let [creds] = acme_clients(&app, ["t"]).await;
    let mut proxy = app.tokens_from("127.0.0.1").await;
    let mut results = Vec::new();
    for junk in ["a", "b", "c"] {
        let mut request = Request::new(issue_request(&creds));
        request
            .metadata_mut()
            .insert("x-forwarded-for", junk.parse().unwrap());
        results.push(
            proxy
                .issue_token(request)
                .await
                .map(|_| ())
                .map_err(|s| s.code()),
        );
    }
    assert_eq!(results, [Ok(()), Ok(()), Err(Code::ResourceExhausted)]);
}

/// Clients of tenant `acme` with scope `read`, one per name, created by an admin.
async fn acme_clients<const N: usize>(app: &TestApp, names: [&str; N]) -> [Creds; N] {
    let admin = app.admin("acme").await;
    let mut created = Vec::new();
    for name in names {
        let (_, creds) = app
            .create_client(&admin, client("acme", name, &["read"]))
            .await;
        created.push(creds);
    }
    created.try_into().unwrap_or_else(|_| unreachable!())
}

for_each_backend!(
    lockout_stops_guessing_but_not_the_honest_client,
    concurrent_guesses_stop_at_the_lock,
    two_replicas_share_one_lockout,
    a_shared_address_locks_the_guesser_not_its_neighbours,
    replicas_share_trusted_addresses,
    unreadable_forwarded_addresses_are_limited_together,
    unreadable_forwarded_addresses_share_the_address_limit,
);
