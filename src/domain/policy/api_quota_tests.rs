//! API quotas: the client's and a route's, alone and together, shared across replicas.

use super::*;
use crate::domain::clients::{ClientInput, ClientSpec};
use crate::domain::ids::{ClientId, TenantId};
use crate::domain::policy::PolicyConfig;

const SEC: i64 = 1_000_000;

fn client(api_rate_limit_per_minute: u32) -> Client {
    let input = ClientInput {
        tenant: "acme".into(),
        name: "bot".into(),
        api_rate_limit_per_minute,
        ..Default::default()
    };
    let now = time::OffsetDateTime::UNIX_EPOCH;
    Client {
        id: ClientId::generate(),
        tenant: TenantId::parse("tenant", "acme").unwrap(),
        spec: ClientSpec::from_input(&input).unwrap(),
        create_time: now,
        update_time: now,
        last_used_time: None,
        revision: 1,
        token_generation: 0,
    }
}

fn route(index: usize, per_minute: i64) -> RouteQuota {
    RouteQuota::parse("r", index, per_minute, format!("GET /r{index}")).unwrap()
}

fn allowed(call: ApiCall) -> QuotaReport {
    match call {
        ApiCall::Allowed(report) => report,
        ApiCall::Throttled(t) => panic!("throttled: {t:?}"),
    }
}

fn throttled(call: ApiCall) -> Throttled {
    match call {
        ApiCall::Throttled(t) => t,
        ApiCall::Allowed(report) => panic!("allowed: {report:?}"),
    }
}

fn retry_after(t: &Throttled) -> Duration {
    match &t.error {
        Error::RateLimited { retry_after, .. } => *retry_after,
        other => panic!("not a rate limit: {other:?}"),
    }
}

#[test]
fn no_quota_set_means_nothing_is_counted() {
    let policy = Policy::new(PolicyConfig::default());
    let free = client(0);
    for _ in 0..1000 {
        assert!(allowed(policy.take_api_call(&free, None, 0)).is_empty());
    }
    assert!(policy.api_clients.is_empty());
}

#[test]
fn the_clients_quota_refuses_with_the_wait_and_its_state() {
    let policy = Policy::new(PolicyConfig::default());
    let bot = client(2);
    let report = allowed(policy.take_api_call(&bot, None, 0));
    let state = report.client.unwrap();
    assert_eq!((state.name.as_str(), state.per_minute), ("client", 2));
    assert_eq!((state.remaining, state.reset), (1, Duration::from_secs(30)));
    assert!(report.route.is_none());
    allowed(policy.take_api_call(&bot, None, 0));
    let refused = throttled(policy.take_api_call(&bot, None, 10 * SEC));
    assert_eq!(retry_after(&refused), Duration::from_secs(20));
    assert_eq!(refused.by, "client");
    assert!(refused.error.to_string().contains("2 calls a minute"));
    let state = refused.report.client.unwrap();
    assert_eq!((state.remaining, state.reset), (0, Duration::from_secs(20)));
    // Another client has its own bucket.
    allowed(policy.take_api_call(&client(2), None, 10 * SEC));
    allowed(policy.take_api_call(&bot, None, 30 * SEC));
}

#[test]
fn a_route_quota_is_per_client_and_per_rule() {
    let policy = Policy::new(PolicyConfig::default());
    let (a, b) = (client(0), client(0));
    let (orders, billing) = (route(0, 1), route(1, 1));
    let report = allowed(policy.take_api_call(&a, Some(&orders), 0));
    assert!(report.client.is_none());
    assert_eq!(report.route.unwrap().name.as_str(), "GET /r0");
    let refused = throttled(policy.take_api_call(&a, Some(&orders), 0));
    assert_eq!(refused.by, "route");
    assert_eq!(retry_after(&refused), Duration::from_secs(60));
    assert!(refused.error.to_string().contains("GET /r0"), "{refused:?}");
    allowed(policy.take_api_call(&b, Some(&orders), 0));
    allowed(policy.take_api_call(&a, Some(&billing), 0));
    // Paths without a quota are not held back.
    allowed(policy.take_api_call(&a, None, 0));
}

#[test]
fn both_quotas_apply_and_a_refused_call_costs_neither() {
    let policy = Policy::new(PolicyConfig::default());
    let bot = client(3);
    let narrow = route(0, 1);
    let report = allowed(policy.take_api_call(&bot, Some(&narrow), 0));
    assert_eq!(report.client.as_ref().unwrap().remaining, 2);
    assert_eq!(report.route.as_ref().unwrap().remaining, 0);
    // The route refuses: the client's call is given back (2 left, not 1).
    let refused = throttled(policy.take_api_call(&bot, Some(&narrow), 0));
    assert_eq!(refused.by, "route");
    assert_eq!(refused.report.client.as_ref().unwrap().remaining, 2);
    allowed(policy.take_api_call(&bot, None, 0));
    allowed(policy.take_api_call(&bot, None, 0));
    // Now both refuse: the longer wait is asked for (the route's minute, not the client's 20 s).
    let refused = throttled(policy.take_api_call(&bot, Some(&narrow), 0));
    assert_eq!(retry_after(&refused), Duration::from_secs(60));
    assert_eq!(refused.by, "route");
    let refused = throttled(policy.take_api_call(&bot, None, 0));
    assert_eq!(retry_after(&refused), Duration::from_secs(20));
}

#[test]
fn replicas_share_the_quotas() {
    let policy = Policy::new(PolicyConfig::default());
    policy.set_replicas(2);
    let bot = client(4);
    for _ in 0..2 {
        allowed(policy.take_api_call(&bot, None, 0));
    }
    let refused = throttled(policy.take_api_call(&bot, None, 0));
    // Half of 4 a minute here: one call each 30 s.
    assert_eq!(retry_after(&refused), Duration::from_secs(30));
    let wide = route(0, 10);
    let other = client(0);
    let passed = (0..10)
        .filter(|_| {
            matches!(
                policy.take_api_call(&other, Some(&wide), 0),
                ApiCall::Allowed(_)
            )
        })
        .count();
    assert_eq!(passed, 5);
}

#[test]
fn idle_buckets_are_swept_with_their_client() {
    let policy = Policy::new(PolicyConfig::default());
    let bot = client(60);
    let rule = route(0, 60);
    allowed(policy.take_api_call(&bot, Some(&rule), 0));
    let id = bot.id.as_str().to_owned();
    let limits = |c: &str, kind: ClientLimit| (c == id).then(|| kind.of(&bot));
    // A second later both buckets are full again, and forgotten.
    policy.forget_idle(limits, SEC);
    assert!(policy.api_clients.is_empty());
    assert!(policy.api_routes.is_empty());
    // A bucket of a client that is gone goes too, full or not.
    allowed(policy.take_api_call(&bot, Some(&rule), SEC));
    policy.forget_idle(|_, _| None, SEC);
    assert!(policy.api_routes.is_empty());
}

#[test]
fn a_quota_runs_low_at_a_tenth_left() {
    let policy = Policy::new(PolicyConfig::default());
    let bot = client(20);
    for _ in 0..17 {
        assert!(!allowed(policy.take_api_call(&bot, None, 0)).running_low());
    }
    // 2 of 20 left.
    assert!(allowed(policy.take_api_call(&bot, None, 0)).running_low());
    // The route's quota counts as well.
    let other = client(1000);
    let report = allowed(policy.take_api_call(&other, Some(&route(0, 1)), 0));
    assert!(report.running_low());
    assert!(!QuotaReport::default().running_low());
}

#[test]
fn a_route_quota_is_at_least_one_request() {
    for bad in [0, -1, i64::from(u32::MAX) + 1] {
        let err = RouteQuota::parse("ext_authz.routes[2]", 2, bad, "GET /x".into())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ext_authz.routes[2].requests_per_minute"),
            "{err}"
        );
        assert!(err.contains(&bad.to_string()), "{err}");
    }
    assert_eq!(route(0, 1).per_minute(), 1);
}
