//! Workload identity federation: a workload presents its own identity token (here made as a
//! Kubernetes service-account token is: an issuer with OpenID discovery, ES256, `aud` tokend)
//! as its client assertion and gets a tokend token with no tokend secret. `refusals`: every
//! claim, key, issuer and tenant rule.

mod refusals;

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokend::config::IssuerSettings;
use tokend::domain::Clock as _;
use tokend::proto::*;
use tonic::Code;

use crate::assertions::{JWT_BEARER, Keys, issue_with, keys, sign, urlencode};
use crate::common::Backend;
use crate::helpers::*;
use crate::key_server::KeyServer;
use crate::oauth_http::token;

pub(crate) const SUBJECT: &str = "system:serviceaccount:payments:billing";

/// A cluster's service-account issuer: its keys, its key server (issuer URL = the server's).
pub(crate) struct Cluster {
    pub keys: Keys,
    pub server: KeyServer,
}

impl Cluster {
    pub async fn start() -> Self {
        let keys = keys();
        let server = KeyServer::start(&keys.jwks).await;
        Self { keys, server }
    }

    pub fn issuer(&self) -> &str {
        &self.server.base
    }

    /// `[[federation.issuers]]` for this cluster, found by discovery, for `tenants`.
    pub fn settings(&self, tenants: &[&str]) -> IssuerSettings {
        IssuerSettings {
            issuer: self.issuer().into(),
            discovery: true,
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
            ..IssuerSettings::default()
        }
    }

    /// Claims of a projected token for `SUBJECT`, an hour long, for tokend.
    pub fn claims(&self, app: &TestApp) -> Value {
        let now = app.clock.now().unix_timestamp();
        json!({
            "iss": self.issuer(), "sub": SUBJECT, "aud": [ISSUER],
            "iat": now, "nbf": now, "exp": now + 3600,
            "jti": uuid::Uuid::new_v4().to_string(),
            "kubernetes.io": {"namespace": "payments", "serviceaccount": {"name": "billing"}},
        })
    }

    pub fn token(&self, claims: &Value) -> String {
        sign(Algorithm::ES256, "ec", &self.keys.ec, claims)
    }
}

/// A client of `tenant` that the workload `SUBJECT` of `issuer` may act as.
pub(crate) fn federated_client(tenant: &str, issuer: &str) -> Client {
    let mut c = client(tenant, "billing", &["read:*"]);
    c.auth_methods = vec!["federated_jwt".into()];
    c.federated_credentials = vec![FederatedCredential {
        issuer: issuer.into(),
        subject: SUBJECT.into(),
    }];
    c
}

async fn a_workload_gets_a_token_with_its_own_identity(backend: Backend) {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "pod-sa-token\n").unwrap();
    let mut issuer = cluster.settings(&["acme"]);
    issuer.token_file = Some(token_file);
    let app = TestApp::spawn_with(backend, |s| s.federation.issuers = vec![issuer]).await;
    let admin = app.admin("acme").await;
    let (created, creds) = app
        .create_client(&admin, federated_client("acme", cluster.issuer()))
        .await;
    assert!(creds.client_secret.is_empty(), "no tokend secret");
    assert_eq!(created.auth_methods, ["federated_jwt"]);
    assert_eq!(created.federated_credentials[0].subject, SUBJECT);
    let id = created.client_id.as_str();

    // gRPC, and the same projected token again: it is reused for its life by design.
    let workload = cluster.token(&cluster.claims(&app));
    let mut tokens = app.tokens();
    for _ in 0..2 {
        let issued = tokens
            .issue_token(issue_with(id, &workload))
            .await
            .expect("a token for the workload's own identity")
            .into_inner();
        let introspector = app.introspector("acme").await;
        let active = app.introspect(&introspector, &issued.access_token).await;
        assert!(active.active);
        assert_eq!(active.client_id, id);
    }
    // Discovery, then the keys; the fetch carried the pod's own token.
    assert_eq!(cluster.server.discovery_hits(), 1);
    assert_eq!(cluster.server.jwks_hits(), 1);
    assert_eq!(
        cluster.server.last_authorization().as_deref(),
        Some("Bearer pod-sa-token")
    );

    // HTTP, as curl in a pod sends it.
    let body = format!(
        "grant_type=client_credentials&client_id={id}&client_assertion_type={}&client_assertion={workload}",
        urlencode(JWT_BEARER)
    );
    let r = token(app.addr, &[], &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["token_type"], "Bearer");

    // The client's usage says how it authenticated.
    let today = app.usage_today(&admin, id).await;
    assert_eq!(today.tokens_issued, 3);
    assert_eq!(
        today.authentications.get("federated_jwt"),
        Some(&3),
        "{today:?}"
    );
}

/// An issuer found by a `jwks_uri` or a `jwks_file` serves the same; the token endpoint URL
/// under `server.public_url` is an audience when the issuer names none of its own, and an
/// issuer's own `audiences` replace tokend's.
async fn issuers_by_jwks_uri_and_file_and_their_audiences(backend: Backend) {
    let by_uri = Cluster::start().await;
    let by_file = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, &by_file.keys.jwks).unwrap();
    let uri_issuer = IssuerSettings {
        issuer: by_uri.issuer().into(),
        jwks_uri: Some(by_uri.server.jwks_uri()),
        ..IssuerSettings::default()
    };
    let file_issuer = IssuerSettings {
        issuer: "spiffe://prod.example".into(),
        jwks_file: Some(jwks_file),
        audiences: vec!["tokend-prod".into()],
        ..IssuerSettings::default()
    };
    let app = TestApp::spawn_with(backend, |s| {
        s.server.public_url = Some("https://auth.example.com".into());
        s.federation.issuers = vec![uri_issuer, file_issuer];
    })
    .await;
    let admin = app.admin("acme").await;
    let (a, _) = app
        .create_client(&admin, federated_client("acme", by_uri.issuer()))
        .await;
    let mut spiffe = federated_client("acme", "spiffe://prod.example");
    spiffe.federated_credentials[0].subject = "spiffe://prod.example/ns/payments/sa/billing".into();
    let (b, _) = app.create_client(&admin, spiffe).await;
    let mut tokens = app.tokens();

    let mut claims = by_uri.claims(&app);
    claims["aud"] = json!("https://auth.example.com/oauth2/token");
    tokens
        .issue_token(issue_with(&a.client_id, &by_uri.token(&claims)))
        .await
        .expect("jwks_uri issuer, token endpoint URL as aud");
    assert_eq!(by_uri.server.discovery_hits(), 0);

    let mut svid = by_file.claims(&app);
    svid["iss"] = json!("spiffe://prod.example");
    svid["sub"] = json!("spiffe://prod.example/ns/payments/sa/billing");
    svid["aud"] = json!("tokend-prod");
    tokens
        .issue_token(issue_with(&b.client_id, &by_file.token(&svid)))
        .await
        .expect("jwks_file issuer, its own audience");
    svid["aud"] = json!(ISSUER);
    let err = tokens
        .issue_token(issue_with(&b.client_id, &by_file.token(&svid)))
        .await
        .unwrap_err();
    assert_eq!(
        oauth2_error(&err),
        "invalid_client",
        "an issuer's own audiences replace tokend's"
    );
}

async fn clients_may_name_only_issuers_trusted_for_their_tenant(backend: Backend) {
    let acme = Cluster::start().await;
    let globex = Cluster::start().await;
    let (for_acme, for_globex) = (acme.settings(&["acme"]), globex.settings(&["globex"]));
    let app = TestApp::spawn_with(backend, |s| {
        s.federation.issuers = vec![for_acme, for_globex];
    })
    .await;
    let admin = app.admin("acme").await;
    for (issuer, says) in [
        (globex.issuer(), "not an issuer this tenant may use"),
        (
            "https://unknown.example",
            "not an issuer this tenant may use",
        ),
    ] {
        let request = CreateClientRequest {
            client: Some(federated_client("acme", issuer)),
        };
        let err = app
            .clients()
            .create_client(authed(request, &admin))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message()
                .starts_with("client.federated_credentials[0].issuer:")
                && err.message().contains(says)
                && err.message().contains(acme.issuer()),
            "{}",
            err.message()
        );
    }
    // federated_jwt needs a credential; an update is checked like a create.
    let mut bare = federated_client("acme", acme.issuer());
    bare.federated_credentials.clear();
    let err = app
        .clients()
        .create_client(authed(CreateClientRequest { client: Some(bare) }, &admin))
        .await
        .unwrap_err();
    assert!(err.message().starts_with("client.federated_credentials:"));
    let (created, _) = app
        .create_client(&admin, federated_client("acme", acme.issuer()))
        .await;
    let change = Client {
        client_id: created.client_id.clone(),
        ..federated_client("acme", globex.issuer())
    };
    let err = app
        .update_client(&admin, change, &["federated_credentials"])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // A token of the other tenant's issuer, for the same subject, does not pass.
    let mut claims = globex.claims(&app);
    claims["iss"] = json!(globex.issuer());
    let err = app
        .tokens()
        .issue_token(issue_with(&created.client_id, &globex.token(&claims)))
        .await
        .unwrap_err();
    assert_eq!(oauth2_error(&err), "invalid_client");
}

/// The offline `tokend client create` binds a workload too, checked against the issuers of
/// the config it is given.
async fn the_cli_binds_a_workload_offline(backend: Backend) {
    let cluster = Cluster::start().await;
    let settings = cluster.settings(&["acme"]);
    let app = TestApp::spawn_with(backend, |s| s.federation.issuers = vec![settings]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tokend.toml");
    let toml = format!(
        "[[federation.issuers]]\nissuer = \"{}\"\ndiscovery = true\ntenants = [\"acme\"]\n",
        cluster.issuer()
    );
    std::fs::write(&config, toml).unwrap();
    let binding = format!("{}={SUBJECT}", cluster.issuer());
    let create = [
        "client",
        "create",
        "--tenant",
        "acme",
        "--name",
        "billing",
        "--scopes",
        "read:*",
        "--auth-methods",
        "federated_jwt",
        "--federated",
        binding.as_str(),
    ];
    let with_config = [&["--config", config.to_str().unwrap()][..], &create[..]].concat();
    let out = app.cli(&with_config).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(created["client_secret"].is_null(), "{created}");
    let id = created["client_id"].as_str().unwrap();
    app.tokens()
        .issue_token(issue_with(id, &cluster.token(&cluster.claims(&app))))
        .await
        .expect("a token for the CLI's federated client");

    // Without the issuer in its config, the CLI refuses the binding and says why.
    let out = app.cli(&create).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not an issuer this tenant may use"),
        "{stderr}"
    );
    // A binding that is not ISSUER=SUBJECT is a usage error naming the form.
    let mut bad = create;
    bad[11] = "system:serviceaccount:payments:billing";
    let out = app.cli(&bad).await;
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ISSUER=SUBJECT"));
}

for_each_backend!(
    the_cli_binds_a_workload_offline,
    a_workload_gets_a_token_with_its_own_identity,
    issuers_by_jwks_uri_and_file_and_their_audiences,
    clients_may_name_only_issuers_trusted_for_their_tenant,
);
