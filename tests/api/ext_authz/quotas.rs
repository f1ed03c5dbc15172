//! API quotas at the edge: a client's `api_rate_limit_per_minute` and a route rule's
//! `requests_per_minute`, as Envoy sees them (429 with `Retry-After` and the IETF RateLimit
//! headers), shared by two replicas, audited once per client and minute, counted in usage.

use std::collections::HashMap;
use std::time::Duration;

use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
use tokend::config::Settings;
use tokend::proto::AuditEventKind;
use tonic::Code;
use tonic::transport::Channel;

use super::{Envoy, authz, ok, rule, spawn};
use crate::audit::{events_of, quick_flush};
use crate::common::{Backend, eventually_some};
use crate::helpers::*;

/// Header name -> value.
fn values(headers: &[HeaderValueOption]) -> HashMap<String, String> {
    headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect()
}

/// A 429 answer: its headers and JSON body, after checking the gRPC code inside it.
fn throttled(response: CheckResponse) -> (HashMap<String, String>, serde_json::Value) {
    let code = response.status.as_ref().map(|s| s.code);
    assert_eq!(code, Some(Code::ResourceExhausted as i32), "{response:?}");
    let Some(HttpResponse::DeniedResponse(denied)) = response.http_response else {
        panic!("not a denied response: {response:?}");
    };
    assert_eq!(denied.status.unwrap().code, 429);
    let headers = values(&denied.headers);
    assert_eq!(headers["content-type"], "application/json");
    assert!(!headers.contains_key("www-authenticate"), "{headers:?}");
    (headers, serde_json::from_str(&denied.body).unwrap())
}

/// The headers an OK answer has for the client: `ratelimit` once a quota is down to a tenth,
/// else none.
fn rate_headers(response: CheckResponse) -> HashMap<String, String> {
    values(&ok(response).response_headers_to_add)
}

async fn check_on(channel: &Channel, request: CheckRequest) -> CheckResponse {
    authz(channel).check(request).await.unwrap().into_inner()
}

/// A client of `acme` with `api_rate_limit_per_minute = limit` and a token of it.
async fn quoted_client(app: &TestApp, admin: &str, name: &str, limit: u32) -> (Creds, String) {
    let mut spec = client("acme", name, &["read"]);
    spec.api_rate_limit_per_minute = limit;
    let (created, creds) = app.create_client(admin, spec).await;
    assert_eq!(created.api_rate_limit_per_minute, limit);
    let token = app.token(&creds, &[]).await;
    (creds, token)
}

async fn a_client_over_its_api_quota_gets_429_with_the_headers(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.ext_authz.enabled = true;
        quick_flush(s);
    })
    .await;
    let admin = app.admin("system").await;
    let (creds, token) = quoted_client(&app, &admin, "bot", 3).await;
    let get = || Envoy::get("/orders/7").bearer(&token);
    // Passing calls tell the client where it stands once it is down to a tenth of its quota:
    // 3 a minute, one back each 20 s.
    assert!(rate_headers(get().check(&app).await).is_empty());
    assert!(rate_headers(get().check(&app).await).is_empty());
    let headers = rate_headers(get().check(&app).await);
    assert_eq!(headers.len(), 1, "{headers:?}");
    assert_eq!(headers["ratelimit"], "\"client\";r=0;t=60");

    let (headers, body) = throttled(get().check(&app).await);
    assert_eq!(headers["retry-after"], "20");
    assert_eq!(headers["ratelimit-policy"], "\"client\";q=3;w=60");
    assert_eq!(headers["ratelimit"], "\"client\";r=0;t=20");
    assert_eq!(body["error"], "rate_limited");
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains("3 calls a minute"), "{description}");
    // Refused calls cost nothing: after the wait, exactly one more passes.
    for _ in 0..2 {
        throttled(get().check(&app).await);
    }
    app.advance(Duration::from_secs(20));
    ok(get().check(&app).await);
    let (headers, _) = throttled(get().check(&app).await);
    assert_eq!(headers["retry-after"], "20");

    // One aggregated event per client and minute, with the count of its refusals.
    let throttled_events = async || {
        let events = events_of(&app, &admin, &creds.client_id).await;
        let kind = AuditEventKind::ApiRefusedRateLimit;
        let mine: Vec<_> = events.into_iter().filter(|e| e.kind() == kind).collect();
        let total: u64 = mine.iter().map(|e| e.count).sum();
        (total == 4).then_some(mine)
    };
    let (events, _) = eventually_some(
        "4 refusals audited",
        Duration::from_secs(15),
        throttled_events,
    )
    .await;
    assert!((1..=2).contains(&events.len()), "{events:?}");
    for e in &events {
        assert_eq!(e.details["quota"], "client");
        assert_eq!(
            (e.tenant.as_str(), e.actor.as_str()),
            ("acme", e.client_id.as_str())
        );
        assert_eq!(e.source_address, "192.0.2.10");
    }
    // Usage per day: what passed and what was throttled.
    let usage = app.usage_today(&admin, &creds.client_id).await;
    assert_eq!((usage.api_calls_allowed, usage.api_calls_throttled), (4, 4));
}

async fn a_route_quota_holds_per_client_and_on_its_route_only(backend: Backend) {
    let mut reports = rule("/reports", &[], &[], None);
    reports.requests_per_minute = Some(2);
    let mut writes = rule("/orders", &["POST"], &[], None);
    writes.requests_per_minute = Some(1);
    let app = spawn(
        backend,
        vec![reports, writes, rule("/orders", &[], &[], None)],
    )
    .await;
    let admin = app.admin("system").await;
    let (_, a) = quoted_client(&app, &admin, "a", 0).await;
    let (_, b) = quoted_client(&app, &admin, "b", 0).await;
    let report = |token: &str| Envoy::get("/reports/daily").bearer(token);
    assert!(rate_headers(report(&a).check(&app).await).is_empty());
    let headers = rate_headers(report(&a).check(&app).await);
    assert_eq!(headers["ratelimit"], "\"/reports\";r=0;t=60");
    let (headers, body) = throttled(report(&a).check(&app).await);
    assert_eq!(headers["retry-after"], "30");
    assert_eq!(headers["ratelimit-policy"], "\"/reports\";q=2;w=60");
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains("/reports"), "{description}");
    // Per client: another client has its own two.
    ok(report(&b).check(&app).await);
    ok(report(&b).check(&app).await);
    // Only on its route: GET /orders has no quota, and answers without RateLimit headers.
    for _ in 0..5 {
        assert!(rate_headers(Envoy::get("/orders/1").bearer(&a).check(&app).await).is_empty());
    }
    // A rule for some methods names them in its policy.
    let post = || Envoy::get("/orders").method("POST").bearer(&a);
    let headers = rate_headers(post().check(&app).await);
    assert_eq!(headers["ratelimit"], "\"POST /orders\";r=0;t=60");
    let (headers, _) = throttled(post().check(&app).await);
    assert_eq!(headers["ratelimit-policy"], "\"POST /orders\";q=1;w=60");

    // With the client's own quota too, both apply, each its own bucket; the stricter refuses.
    let (_, both) = quoted_client(&app, &admin, "both", 10).await;
    assert!(rate_headers(report(&both).check(&app).await).is_empty());
    let headers = rate_headers(report(&both).check(&app).await);
    assert_eq!(
        headers["ratelimit"],
        "\"client\";r=8;t=12, \"/reports\";r=0;t=60"
    );
    let (headers, _) = throttled(report(&both).check(&app).await);
    assert_eq!(headers["retry-after"], "30");
    assert_eq!(
        headers["ratelimit-policy"],
        "\"client\";q=10;w=60, \"/reports\";q=2;w=60"
    );
    assert_eq!(
        headers["ratelimit"],
        "\"client\";r=8;t=12, \"/reports\";r=0;t=30"
    );
}

async fn two_replicas_share_one_api_quota(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.ext_authz.enabled = true;
        s.sync.heartbeat_ms = 100;
    })
    .await;
    let admin = app.admin("system").await;
    let (creds, token) = quoted_client(&app, &admin, "bot", 4).await;
    let replica = Replica::start(&app, |_| {}).await;
    // Both heartbeat several times: each knows there are two.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut passed = 0;
    for channel in [&app.channel, &replica.channel] {
        for _ in 0..4 {
            let response = check_on(channel, Envoy::get("/").bearer(&token).request()).await;
            match response.status.as_ref().map(|s| s.code) {
                Some(0) => passed += 1,
                _ => {
                    let (headers, _) = throttled(response);
                    // Each replica's share is half the quota: one call each 30 s.
                    assert_eq!(headers["retry-after"], "30");
                }
            }
        }
    }
    // Four in all, not eight.
    assert_eq!(passed, 4);
    let usage = app.usage_today(&admin, &creds.client_id).await;
    assert!(usage.api_calls_allowed >= 2, "{usage:?}");
    // Alone again, the remaining replica takes the whole quota at its next heartbeat.
    replica.stop().await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    app.advance(Duration::from_secs(60));
    let mut alone = 0;
    for _ in 0..6 {
        let response = Envoy::get("/").bearer(&token).check(&app).await;
        alone += usize::from(response.status.as_ref().map(|s| s.code) == Some(0));
    }
    assert_eq!(alone, 4);
}

async fn updating_the_api_quota_takes_effect_at_once(backend: Backend) {
    let app = spawn(backend, vec![]).await;
    let admin = app.admin("system").await;
    let (creds, token) = quoted_client(&app, &admin, "bot", 1).await;
    let get = || Envoy::get("/").bearer(&token);
    ok(get().check(&app).await);
    throttled(get().check(&app).await);
    let mut open = app.get_client(&admin, &creds.client_id).await;
    assert_eq!(open.api_rate_limit_per_minute, 1);
    open.api_rate_limit_per_minute = 0;
    let updated = app
        .update_client(&admin, open, &["api_rate_limit_per_minute"])
        .await
        .unwrap();
    assert_eq!(updated.api_rate_limit_per_minute, 0);
    for _ in 0..5 {
        assert!(rate_headers(get().check(&app).await).is_empty());
    }
    let mut strict = updated;
    strict.api_rate_limit_per_minute = 2;
    app.update_client(&admin, strict, &["api_rate_limit_per_minute"])
        .await
        .unwrap();
    // Calls made under the old quota still count until they refill.
    throttled(get().check(&app).await);
    app.advance(Duration::from_secs(60));
    let shown = app.get_client(&admin, &creds.client_id).await;
    assert_eq!(shown.api_rate_limit_per_minute, 2);
    ok(get().check(&app).await);
    ok(get().check(&app).await);
    let (headers, _) = throttled(get().check(&app).await);
    assert_eq!(headers["ratelimit-policy"], "\"client\";q=2;w=60");
}

for_each_backend!(
    a_client_over_its_api_quota_gets_429_with_the_headers,
    a_route_quota_holds_per_client_and_on_its_route_only,
    two_replicas_share_one_api_quota,
    updating_the_api_quota_takes_effect_at_once,
);

/// A quota of 0 (or less) requests a minute is refused, naming the field: leaving the key out
/// is how a rule has no quota.
#[test]
fn a_route_quota_below_one_is_refused_naming_the_field() {
    for bad in [0, -10] {
        let mut settings = Settings::default();
        let mut quota = rule("/reports", &[], &[], None);
        quota.requests_per_minute = Some(bad);
        settings.ext_authz.routes = vec![rule("/", &[], &[], None), quota];
        let err = settings.validate().unwrap_err().to_string();
        assert!(
            err.contains("ext_authz.routes[1].requests_per_minute"),
            "{err}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokend.toml");
    std::fs::write(
        &file,
        "[[ext_authz.routes]]\npath_prefix = \"/reports\"\nrequests_per_minute = 0\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokend"))
        .arg("--config")
        .arg(&file)
        .arg("migrate")
        .env("TOKEND__DATABASE__URL", "sqlite::memory:")
        .output()
        .expect("run tokend");
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("ext_authz.routes[0].requests_per_minute"),
        "{stderr}"
    );
}
