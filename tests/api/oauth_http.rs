//! The OAuth 2.0 token, introspection and revocation endpoints and the RFC 8414 metadata over
//! plain HTTP/1.1, on the gRPC port: both client authentication methods, the grants, and every
//! error RFC 6749 names. (Token exchange over HTTP is in `exchange`.)

use std::net::SocketAddr;

use base64::Engine as _;
use tokend::proto::*;

use crate::common::Backend;
use crate::helpers::*;

/// An HTTP/1.1 answer: status, lower-cased head, body.
pub(crate) struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

pub(crate) async fn http(
    addr: SocketAddr,
    request_line: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request =
        format!("{request_line} HTTP/1.1\r\nHost: tokend.test\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Answer {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

pub(crate) const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

pub(crate) async fn token(addr: SocketAddr, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut all = vec![FORM];
    all.extend_from_slice(headers);
    http(addr, "POST /oauth2/token", &all, body).await
}

/// A form POST to the token endpoint with `client_secret_basic`.
pub(crate) async fn token_with_basic(addr: SocketAddr, creds: &Creds, body: &str) -> Answer {
    token(addr, &[("Authorization", &basic(creds))], body).await
}

pub(crate) fn basic(creds: &Creds) -> String {
    let pair = format!("{}:{}", creds.client_id, creds.client_secret);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

fn refreshing_client() -> Client {
    let mut c = client("acme", "svc", &["read:*", "write:orders"]);
    c.audiences = vec!["https://a.internal".into(), "https://b.internal".into()];
    c.refresh_token_ttl = Some(prost_types::Duration {
        seconds: 3600,
        nanos: 0,
    });
    c
}

async fn client_credentials_and_refresh_over_http(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("acme").await;
    let introspector = app.introspector("acme").await;
    let (_, creds) = app.create_client(&admin, refreshing_client()).await;
    let auth = basic(&creds);

    let r = token(
        app.addr,
        &[("Authorization", &auth)],
        "grant_type=client_credentials&scope=read%3Ainvoices&resource=https%3A%2F%2Fa.internal",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.head.contains("cache-control: no-store"), "{}", r.head);
    assert!(
        r.head.contains("content-type: application/json"),
        "{}",
        r.head
    );
    let body = r.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read:invoices");
    assert!(body["expires_in"].as_i64().unwrap() > 0);
    assert_eq!(body["refresh_token_expires_in"], 3600, "{body}");
    let access = body["access_token"].as_str().unwrap();
    let seen = app.introspect(&introspector, access).await;
    assert!(seen.active);
    assert_eq!(seen.aud, ["https://a.internal"]);
    assert_eq!(seen.client_id, creds.client_id);

    // client_secret_post, and the refresh grant.
    let post = format!(
        "grant_type=refresh_token&refresh_token={}&client_id={}&client_secret={}",
        body["refresh_token"].as_str().unwrap(),
        creds.client_id,
        creds.client_secret
    );
    let r = token(app.addr, &[], &post).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let refreshed = r.json();
    assert_ne!(refreshed["refresh_token"], body["refresh_token"]);
    let left = refreshed["refresh_token_expires_in"].as_i64().unwrap();
    assert!((1..=3600).contains(&left), "{refreshed}");
    assert!(
        app.introspect(&introspector, refreshed["access_token"].as_str().unwrap())
            .await
            .active
    );
    // Without a refresh token, no refresh_token_expires_in either.
    let (_, plain) = app
        .create_client(&admin, client("acme", "plain", &["read"]))
        .await;
    let r = token_with_basic(app.addr, &plain, "grant_type=client_credentials").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let plain = r.json();
    assert!(plain.get("refresh_token").is_none(), "{plain}");
    assert!(plain.get("refresh_token_expires_in").is_none(), "{plain}");
    // The spent token again, past the retry window: reuse, the family dies.
    app.advance(std::time::Duration::from_secs(60));
    let r = token(app.addr, &[], &post).await;
    assert_eq!(
        (r.status, r.error()),
        (400, "invalid_grant".into()),
        "{}",
        r.body
    );
    assert!(
        !app.introspect(&introspector, refreshed["access_token"].as_str().unwrap())
            .await
            .active
    );
}

/// Headers, body, expected status and `error`.
type Case<'a> = (Vec<(&'a str, &'a str)>, String, u16, &'a str);

async fn errors_follow_rfc_6749(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.secrets.max_failures = 3).await;
    let admin = app.admin("acme").await;
    let (_, creds) = app.create_client(&admin, refreshing_client()).await;
    let auth = basic(&creds);
    let mut limited = refreshing_client();
    limited.rate_limit_per_minute = 1;
    let (_, limited) = app.create_client(&admin, limited).await;
    let limited_auth = basic(&limited);
    let wrong = Creds {
        client_secret: "tkd_cs_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".into(),
        ..creds.clone()
    };
    let cc = "grant_type=client_credentials";
    let cases: Vec<Case> = vec![
        (vec![], format!("{cc}&scope=admin"), 401, "invalid_client"), // no client auth at all
        (
            vec![("Authorization", "Bearer x")],
            cc.into(),
            400,
            "invalid_request",
        ),
        (
            vec![("Authorization", &auth)],
            format!("{cc}&client_secret=x"),
            400,
            "invalid_request",
        ),
        (
            vec![("Authorization", &auth)],
            "grant_type=password".into(),
            400,
            "unsupported_grant_type",
        ),
        (
            vec![("Authorization", &auth)],
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange".into(),
            400,
            "invalid_request",
        ),
        (
            vec![("Authorization", &auth)],
            "scope=read".into(),
            400,
            "invalid_request",
        ),
        (
            vec![("Authorization", &auth)],
            format!("{cc}&scope=a&scope=b"),
            400,
            "invalid_request",
        ),
        (
            vec![("Authorization", &auth)],
            format!("{cc}&scope=admin"),
            400,
            "invalid_scope",
        ),
        (
            vec![("Authorization", &auth)],
            format!("{cc}&resource=https%3A%2F%2Fz"),
            400,
            "invalid_target",
        ),
        (
            vec![("Authorization", &auth)],
            "grant_type=refresh_token&refresh_token=nonsense".into(),
            400,
            "invalid_grant",
        ),
    ];
    for (headers, body, status, code) in cases {
        let r = token(app.addr, &headers, &body).await;
        assert_eq!(
            (r.status, r.error().as_str()),
            (status, code),
            "{body}: {}",
            r.body
        );
        assert!(
            r.json()["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
    }
    // A wrong secret: 401 with a Basic challenge when Basic was used, 400 in the body.
    let r = token(app.addr, &[("Authorization", &basic(&wrong))], cc).await;
    assert_eq!((r.status, r.error().as_str()), (401, "invalid_client"));
    assert!(r.head.contains("www-authenticate: basic"), "{}", r.head);
    let post = format!(
        "{cc}&client_id={}&client_secret={}",
        wrong.client_id, wrong.client_secret
    );
    let r = token(app.addr, &[], &post).await;
    assert_eq!((r.status, r.error().as_str()), (400, "invalid_client"));
    // Bad transport: content type, size, method.
    let r = http(
        app.addr,
        "POST /oauth2/token",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        "{}",
    )
    .await;
    assert_eq!((r.status, r.error().as_str()), (400, "invalid_request"));
    let big = format!("{cc}&pad={}", "x".repeat(20 * 1024));
    let r = token(app.addr, &[("Authorization", &auth)], &big).await;
    assert_eq!(r.status, 413, "{}", r.body);
    let r = http(app.addr, "GET /oauth2/token", &[], "").await;
    assert_eq!(r.status, 405);
    // A client's rate limit (1 a minute; every call counts, refused ones too) and the
    // lockout (3 failures; two spent above): 429 with Retry-After.
    let r = token(app.addr, &[("Authorization", &limited_auth)], cc).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = token(app.addr, &[("Authorization", &limited_auth)], cc).await;
    assert_eq!((r.status, r.error().as_str()), (429, "rate_limited"));
    assert!(r.head.contains("retry-after: 60"), "{}", r.head);
    // The third failure locks (and is still answered as a failure); the next is refused.
    let r = token(app.addr, &[("Authorization", &basic(&wrong))], cc).await;
    assert_eq!((r.status, r.error().as_str()), (401, "invalid_client"));
    let r = token(app.addr, &[("Authorization", &basic(&wrong))], cc).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (429, "rate_limited"),
        "{}",
        r.body
    );
    assert!(r.head.contains("retry-after:"), "{}", r.head);
}

async fn client_policy_holds_over_http(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("acme").await;
    let mut c = client("acme", "svc", &["read"]);
    c.allowed_cidrs = vec!["10.0.0.0/8".into()];
    let (_, creds) = app.create_client(&admin, c).await;
    let r = token(
        app.addr,
        &[("Authorization", &basic(&creds))],
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!((r.status, r.error().as_str()), (400, "unauthorized_client"));
    assert!(
        r.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1")
    );
}

async fn revocation_over_http(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("acme").await;
    let introspector = app.introspector("acme").await;
    let (_, creds) = app.create_client(&admin, refreshing_client()).await;
    let (_, other) = app.create_client(&admin, refreshing_client()).await;
    let auth = basic(&creds);
    let revoke = |headers: Vec<(&'static str, String)>, body: String| {
        let addr = app.addr;
        async move {
            let mut all = vec![FORM];
            let owned: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            all.extend(owned);
            http(addr, "POST /oauth2/revoke", &all, &body).await
        }
    };
    let issued = token(
        app.addr,
        &[("Authorization", &auth)],
        "grant_type=client_credentials",
    )
    .await
    .json();
    let access = issued["access_token"].as_str().unwrap().to_owned();
    let refresh = issued["refresh_token"].as_str().unwrap().to_owned();
    assert!(app.introspect(&introspector, &access).await.active);

    // Another client may not revoke it; the token stays active.
    let r = revoke(
        vec![("Authorization", basic(&other))],
        format!("token={access}"),
    )
    .await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "unauthorized_client"),
        "{}",
        r.body
    );
    assert!(app.introspect(&introspector, &access).await.active);
    // The owner revokes the refresh token, with client_secret_post: the family goes, with the
    // access token issued from it.
    let body = format!(
        "token={refresh}&token_type_hint=refresh_token&client_id={}&client_secret={}",
        creds.client_id, creds.client_secret
    );
    let r = revoke(vec![], body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.is_empty());
    assert!(!app.introspect(&introspector, &access).await.active);
    // Unknown tokens are fine (RFC 7009 section 2.2); bad input is not.
    let r = revoke(
        vec![("Authorization", auth.clone())],
        "token=nonsense".into(),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = revoke(
        vec![("Authorization", auth.clone())],
        "token=x&token_type_hint=id_token".into(),
    )
    .await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "unsupported_token_type")
    );
    let r = revoke(
        vec![("Authorization", auth.clone())],
        "token_type_hint=access_token".into(),
    )
    .await;
    assert_eq!((r.status, r.error().as_str()), (400, "invalid_request"));
    let wrong = Creds {
        client_secret: "tkd_cs_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".into(),
        ..creds.clone()
    };
    let r = revoke(vec![("Authorization", basic(&wrong))], "token=x".into()).await;
    assert_eq!((r.status, r.error().as_str()), (401, "invalid_client"));
    assert!(r.head.contains("www-authenticate: basic"), "{}", r.head);
}

pub(crate) async fn introspect(addr: SocketAddr, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut all = vec![FORM];
    all.extend_from_slice(headers);
    http(addr, "POST /oauth2/introspect", &all, body).await
}

/// RFC 7662 over HTTP: the caller authenticates with a bearer token or with its own client
/// credentials; the answer has the gRPC answer's members, and `active: false` alone otherwise.
async fn introspection_over_http(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("acme").await;
    let bearer = format!("Bearer {}", app.introspector("acme").await);
    let (_, creds) = app.create_client(&admin, refreshing_client()).await;
    let resource_server = app.bootstrap("acme", "tokend.introspect").await;
    let issued = app.try_token(&creds, &["read:x"], &[]).await.unwrap();
    let access = issued.access_token.clone();
    let form = format!("token={access}&token_type_hint=access_token");

    let r = introspect(app.addr, &[("Authorization", &bearer)], &form).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.head.contains("cache-control: no-store"), "{}", r.head);
    let m = r.json();
    assert_eq!(m["active"], true);
    assert_eq!(m["scope"], "read:x");
    assert_eq!(m["client_id"], creds.client_id.as_str());
    assert_eq!(m["sub"], creds.client_id.as_str());
    assert_eq!(m["tenant"], "acme");
    assert_eq!(m["token_type"], "Bearer");
    assert_eq!(m["iss"], ISSUER);
    assert_eq!(
        m["aud"],
        serde_json::json!(["https://a.internal", "https://b.internal"])
    );
    assert!(m["exp"].as_i64().unwrap() > m["iat"].as_i64().unwrap());
    assert!(m.get("act").is_none());
    // The same answer as gRPC's, member for member.
    let grpc = app.introspect(&bearer[7..], &access).await;
    assert_eq!(m["jti"], grpc.jti.as_str());
    assert_eq!(m["exp"], grpc.exp);

    // Its own client credentials, by Basic and in the body.
    let r = introspect(
        app.addr,
        &[("Authorization", &basic(&resource_server))],
        &form,
    )
    .await;
    assert_eq!((r.status, r.json()["active"].clone()), (200, true.into()));
    let posted = format!(
        "{form}&client_id={}&client_secret={}",
        resource_server.client_id, resource_server.client_secret
    );
    let r = introspect(app.addr, &[], &posted).await;
    assert_eq!((r.status, r.json()["active"].clone()), (200, true.into()));

    // Inactive: `{"active": false}` and nothing else.
    for token in ["garbage", issued.refresh_token.as_str()] {
        let r = introspect(
            app.addr,
            &[("Authorization", &bearer)],
            &format!("token={token}"),
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), serde_json::json!({"active": false}));
    }
    // tokend's client_address extension, as over gRPC.
    let mut fenced = refreshing_client();
    fenced.allowed_cidrs = vec!["127.0.0.0/8".into()];
    let (_, fenced) = app.create_client(&admin, fenced).await;
    let fenced_token = app.token(&fenced, &[]).await;
    for (from, active) in [("127.0.0.1", true), ("10.1.2.3", false)] {
        let body = format!("token={fenced_token}&client_address={from}");
        let r = introspect(app.addr, &[("Authorization", &bearer)], &body).await;
        assert_eq!(r.json()["active"], active, "{from}");
    }

    // Callers that may not introspect.
    let r = introspect(app.addr, &[], &form).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (401, "invalid_token"),
        "{}",
        r.body
    );
    let r = introspect(app.addr, &[("Authorization", &basic(&creds))], &form).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (403, "insufficient_scope"),
        "{}",
        r.body
    );
    let r = introspect(app.addr, &[("Authorization", "Bearer nonsense")], &form).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (401, "invalid_token"),
        "{}",
        r.body
    );
    assert!(r.head.contains("www-authenticate: bearer"), "{}", r.head);
    let wrong = Creds {
        client_secret: "tkd_cs_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".into(),
        ..resource_server.clone()
    };
    let r = introspect(app.addr, &[("Authorization", &basic(&wrong))], &form).await;
    assert_eq!((r.status, r.error().as_str()), (401, "invalid_client"));
    assert!(r.head.contains("www-authenticate: basic"), "{}", r.head);
    // Bad input.
    let r = introspect(app.addr, &[("Authorization", &bearer)], "token_type_hint=x").await;
    assert_eq!((r.status, r.error().as_str()), (400, "invalid_request"));
    let r = introspect(
        app.addr,
        &[("Authorization", &bearer)],
        &format!("{form}&client_address=nope"),
    )
    .await;
    assert_eq!((r.status, r.error().as_str()), (400, "invalid_request"));
    let r = http(app.addr, "GET /oauth2/introspect", &[], "").await;
    assert_eq!(r.status, 405);
}

async fn metadata_names_the_endpoints(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = http(
        app.addr,
        "GET /.well-known/oauth-authorization-server",
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let m = r.json();
    assert_eq!(m["issuer"], ISSUER);
    assert_eq!(m["token_endpoint"], "http://tokend.test/oauth2/token");
    assert_eq!(m["jwks_uri"], "http://tokend.test/.well-known/jwks.json");
    assert_eq!(m["revocation_endpoint"], "http://tokend.test/oauth2/revoke");
    assert_eq!(
        m["introspection_endpoint"],
        "http://tokend.test/oauth2/introspect"
    );
    assert_eq!(
        m["grant_types_supported"],
        serde_json::json!([
            "client_credentials",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
    let methods = serde_json::json!([
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth"
    ]);
    let algorithms = serde_json::json!(["EdDSA", "ES256", "ES384", "RS256", "PS256"]);
    for endpoint in ["token", "revocation", "introspection"] {
        assert_eq!(
            m[format!("{endpoint}_endpoint_auth_methods_supported")],
            methods
        );
        assert_eq!(
            m[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")],
            algorithms
        );
    }
    assert_eq!(m["tls_client_certificate_bound_access_tokens"], true);
    assert!(m.get("code_challenge_methods_supported").is_none());
    assert!(m.get("scopes_supported").is_none());

    let behind = TestApp::spawn_with(backend, |s| {
        s.server.public_url = Some("https://auth.example.com/".into());
    })
    .await;
    let r = http(
        behind.addr,
        "GET /.well-known/oauth-authorization-server",
        &[],
        "",
    )
    .await;
    assert_eq!(
        r.json()["token_endpoint"],
        "https://auth.example.com/oauth2/token"
    );
}

for_each_backend!(
    client_credentials_and_refresh_over_http,
    errors_follow_rfc_6749,
    client_policy_holds_over_http,
    revocation_over_http,
    introspection_over_http,
    metadata_names_the_endpoints,
);
