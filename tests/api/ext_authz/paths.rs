//! Route rules against the spellings an outside review used to get past them (issue 20 section
//! 2): dot segments, `;` parameters, encoded dots and slashes, letter case, doubled slashes,
//! and methods in lower or mixed case. Each is judged on the path a backend will serve.

use tonic::Code;

use super::{Envoy, denied, ok, rule, spawn};
use crate::common::Backend;
use crate::helpers::*;

/// Requests that a token holding only `orders:read` must not get through: `/admin` needs
/// `admin:all`, a POST under `/orders` needs `orders:write`.
const MUST_BE_DENIED: &[(&str, &str)] = &[
    ("GET", "/admin/x"),
    ("GET", "/orders/..;/admin/x"),
    ("GET", "/orders/..;x=1/admin/x"),
    ("GET", "/ADMIN/x"),
    ("GET", "/Admin/x"),
    ("GET", "/orders/../admin/x"),
    ("GET", "/orders/%2e%2e/admin/x"),
    ("GET", "/orders/%2E%2E/admin/x"),
    ("GET", "/orders/.%2e/admin/x"),
    ("GET", "/orders/%2e%2e;/admin/x"),
    ("GET", "//admin/x"),
    ("GET", "/./admin/x"),
    ("GET", "/admin;jsessionid=1/x"),
    ("GET", "/%61dmin/x"),
    ("GET", "/orders/..%2Fadmin/x"),
    ("GET", "/orders/..%2fadmin/x"),
    ("GET", "/orders/%2e%2e%2Fadmin/x"),
    ("GET", "/orders%2F..%2Fadmin/x"),
    ("GET", "/orders/..%5Cadmin/x"),
    ("GET", "/orders/..\\admin/x"),
    ("GET", "/orders/../../admin/x"),
    ("GET", "/orders/%00/../../admin"),
    ("GET", "/orders/%zz"),
    ("GET", "/orders/%FF"),
    ("POST", "/orders/1"),
    ("post", "/orders/1"),
    ("Post", "/orders/1"),
    ("pOST", "/orders/1"),
    ("post", "/orders/./1"),
];

/// What the same reader may still do, and what `admin:all` and `orders:write` may.
const MUST_BE_ALLOWED: &[(&str, &str, &str)] = &[
    ("orders:read", "GET", "/orders/./x"),
    ("orders:read", "GET", "/orders//7;v=2"),
    ("orders:read", "get", "/orders/%37?next=/admin"),
    ("admin:all", "GET", "/admin/x"),
    ("admin:all", "GET", "/ADMIN/x"),
    ("admin:all", "GET", "/orders/..;/admin/x"),
    ("orders:write", "post", "/orders/1"),
    ("orders:write", "Post", "/orders/1"),
];

async fn spawn_with_rules(backend: Backend) -> TestApp {
    spawn(
        backend,
        vec![
            rule("/orders", &[], &["orders:read"], None),
            rule("/orders", &["POST"], &["orders:write"], None),
            rule("/admin", &[], &["admin:all"], None),
        ],
    )
    .await
}

async fn no_spelling_of_a_path_or_method_gets_past_a_rule(backend: Backend) {
    let app = spawn_with_rules(backend).await;
    let admin = app.admin("system").await;
    let (_, reader) = app
        .create_client(&admin, client("acme", "reader", &["orders:read"]))
        .await;
    let reader = app.token(&reader, &[]).await;
    let mut leaks = Vec::new();
    for &(method, path) in MUST_BE_DENIED {
        let response = Envoy::get(path)
            .method(method)
            .bearer(&reader)
            .check(&app)
            .await;
        if response.status.as_ref().map(|s| s.code) != Some(Code::PermissionDenied as i32) {
            leaks.push(format!("{method} {path}: {:?}", response.status));
            continue;
        }
        let (status, _, body) = denied(response, Code::PermissionDenied);
        assert_eq!(status, 403, "{method} {path}");
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
    }
    assert!(leaks.is_empty(), "not denied: {leaks:#?}");

    for (i, &(scope, method, path)) in MUST_BE_ALLOWED.iter().enumerate() {
        let (_, creds) = app
            .create_client(&admin, client("acme", &format!("holder-{i}"), &[scope]))
            .await;
        let token = app.token(&creds, &[]).await;
        let response = Envoy::get(path)
            .method(method)
            .bearer(&token)
            .check(&app)
            .await;
        assert_eq!(
            response.status.as_ref().map(|s| s.code),
            Some(0),
            "{scope}: {method} {path}: {response:?}"
        );
        ok(response);
    }
}

async fn a_path_without_a_normal_form_is_denied_with_its_reason(backend: Backend) {
    let app = spawn(backend, vec![]).await;
    let token = app.token(&app.bootstrap("acme", "read").await, &[]).await;
    for (path, reason) in [
        ("/files/a%2Fb", "encoded slash"),
        ("/files/a%5cb", "encoded slash"),
        ("/files/a\\b", "backslash"),
        ("/files/a%00", "control character"),
        ("/files/a%0d%0aX-Forged:%201", "control character"),
        ("/files/%E2%82", "not UTF-8"),
        ("/files/%2", "invalid percent-encoding"),
        ("/..", "above the root"),
        ("*", "does not start with '/'"),
    ] {
        // With or without a token: the path alone decides.
        for request in [Envoy::get(path).bearer(&token), Envoy::get(path)] {
            let (status, challenge, body) =
                denied(request.check(&app).await, Code::PermissionDenied);
            assert_eq!(status, 403, "{path}");
            assert_eq!(challenge, "", "no token could help: {path}");
            assert_eq!(body["error"], "invalid_request", "{path}");
            let description = body["error_description"].as_str().unwrap();
            assert!(description.contains(reason), "{path}: {description}");
            assert!(
                !description.contains("files"),
                "the path is not echoed: {description}"
            );
        }
    }
    // The same paths without the trouble pass.
    ok(Envoy::get("/files/a%2Db;v=1/./c?x=%2F")
        .bearer(&token)
        .check(&app)
        .await);
}

/// A prefix covers its own path and what lies under it, in any case unless the rule says
/// `case_sensitive`.
async fn rules_cover_their_subtree_in_the_case_they_choose(backend: Backend) {
    let mut strict = rule("/Files", &[], &["files:admin"], None);
    strict.case_sensitive = true;
    let app = spawn(
        backend,
        vec![strict, rule("/admin", &[], &["admin:all"], None)],
    )
    .await;
    let token = app
        .token(&app.bootstrap("acme", "orders:read").await, &[])
        .await;
    for path in [
        "/Files/x",
        "/Files",
        "/admin",
        "/admin/",
        "/ADMIN",
        "/aDmIn/x;v=1",
    ] {
        let response = Envoy::get(path).bearer(&token).check(&app).await;
        let (status, challenge, _) = denied(response, Code::PermissionDenied);
        assert_eq!(status, 403, "{path}");
        assert!(
            challenge.contains("insufficient_scope"),
            "{path}: {challenge}"
        );
    }
    // Another case of a case-sensitive prefix, and names that only begin like a prefix.
    for path in [
        "/files/x",
        "/FILES/x",
        "/administrator",
        "/admin-ui/x",
        "/Filesystem",
    ] {
        let response = Envoy::get(path).bearer(&token).check(&app).await;
        assert_eq!(
            response.status.as_ref().map(|s| s.code),
            Some(0),
            "{path}: {response:?}"
        );
    }
}

for_each_backend!(
    no_spelling_of_a_path_or_method_gets_past_a_rule,
    a_path_without_a_normal_form_is_denied_with_its_reason,
    rules_cover_their_subtree_in_the_case_they_choose,
);
