//! GetClientUsage shows the last use the answering replica already knows: noted in memory at
//! the token endpoint, before the batch write (`tokens.last_used_flush_secs`) stores it.

use tokend::proto::audit_service_client::AuditServiceClient;
use tokend::proto::*;

use crate::common::Backend;
use crate::helpers::*;

async fn usage_shows_a_last_use_not_yet_written(backend: Backend) {
    // No batch write during the test: what GetClientUsage shows comes from memory.
    let app = TestApp::spawn_with(backend, |s| s.tokens.last_used_flush_secs = 3600).await;
    let admin = app.admin("acme").await;
    let (_, creds) = app
        .create_client(&admin, client("acme", "bot", &["read"]))
        .await;
    let usage = async || {
        let request = GetClientUsageRequest {
            client_id: creds.client_id.clone(),
            days: 1,
        };
        AuditServiceClient::new(app.channel.clone())
            .get_client_usage(authed(request, &admin))
            .await
            .expect("GetClientUsage")
            .into_inner()
    };
    let before = usage().await;
    assert!(before.last_used_time.is_none(), "{before:?}");
    app.tokens_from("127.0.0.2")
        .await
        .issue_token(issue_request(&creds))
        .await
        .unwrap();
    let after = usage().await;
    assert!(after.last_used_time.is_some(), "{after:?}");
    assert_eq!(after.last_used_address, "127.0.0.2");
    assert_eq!(after.days[0].tokens_issued, 1);
}

for_each_backend!(usage_shows_a_last_use_not_yet_written);
