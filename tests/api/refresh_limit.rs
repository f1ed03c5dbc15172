//! `refresh_rate_limit_per_minute`: refreshes count against their own per-client limit, apart
//! from `rate_limit_per_minute` (the other grants), over gRPC and HTTP alike.

use std::time::Duration;

use tokend::proto::*;

use crate::audit::{events_of, quick_flush};
use crate::common::{Backend, eventually_some};
use crate::helpers::*;
use crate::oauth_http::{basic, token};
use crate::policy::{assert_rate_limited, passes, refresh_request};

async fn refreshes_have_their_own_limit(backend: Backend) {
    let app = TestApp::spawn_with(backend, quick_flush).await;
    let admin = app.admin("acme").await;
    let mut bot = client("acme", "bot", &["read"]);
    bot.rate_limit_per_minute = 1;
    bot.refresh_rate_limit_per_minute = 2;
    bot.refresh_token_ttl = Some(prost_types::Duration {
        seconds: 3600,
        nanos: 0,
    });
    let (created, creds) = app.create_client(&admin, bot).await;
    assert_eq!(created.refresh_rate_limit_per_minute, 2);
    let mut tokens = app.tokens();
    let mut refresh = tokens
        .issue_token(issue_request(&creds))
        .await
        .unwrap()
        .into_inner()
        .refresh_token;
    // The token limit is spent; refreshes still pass, up to their own limit.
    assert_eq!(passes(&mut tokens, &creds, 1).await, 0);
    for _ in 0..2 {
        refresh = tokens
            .refresh_token(refresh_request(&creds, &refresh))
            .await
            .expect("within the refresh limit")
            .into_inner()
            .refresh_token;
    }
    let err = tokens
        .refresh_token(refresh_request(&creds, &refresh))
        .await
        .unwrap_err();
    assert_eq!(assert_rate_limited(&err), Duration::from_secs(30));
    assert!(err.message().contains("2 refreshes a minute"), "{err:?}");
    // Audited apart from the token limit's refusal above (`limit=client`).
    let what = "a refusal audited with limit=refresh";
    eventually_some(what, Duration::from_secs(15), async || {
        let events = events_of(&app, &admin, &creds.client_id).await;
        events.into_iter().find(|e| {
            e.kind() == AuditEventKind::TokenRefusedRateLimit
                && e.details.get("limit").map(String::as_str) == Some("refresh")
        })
    })
    .await;

    // Over HTTP, `grant_type=refresh_token` counts against the same limit: 429 + Retry-After.
    let auth = basic(&creds);
    let form = format!("grant_type=refresh_token&refresh_token={refresh}");
    let r = token(app.addr, &[("Authorization", &auth)], &form).await;
    assert_eq!((r.status, r.error().as_str()), (429, "rate_limited"));
    assert!(r.head.contains("retry-after: 30"), "{}", r.head);
    // Half a minute refills one refresh, and half a token: the limits fill apart too.
    app.advance(Duration::from_secs(30));
    let r = token(app.addr, &[("Authorization", &auth)], &form).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(passes(&mut tokens, &creds, 1).await, 0);

    // The limit is an update-mask path like any other: 0 lifts it.
    let mut open = created;
    open.refresh_rate_limit_per_minute = 0;
    let updated = app
        .update_client(&admin, open, &["refresh_rate_limit_per_minute"])
        .await
        .unwrap();
    assert_eq!(updated.refresh_rate_limit_per_minute, 0);
    let refresh = r.json()["refresh_token"].as_str().unwrap().to_owned();
    tokens
        .refresh_token(refresh_request(&creds, &refresh))
        .await
        .expect("no refresh limit any more");
}

for_each_backend!(refreshes_have_their_own_limit);
