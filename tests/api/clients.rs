//! ClientService: admin auth, tenant isolation, updates, paging, rotation, deletion, bad input.

use std::time::Duration;

use tokend::proto::*;
use tonic::{Code, Request};
use tonic_types::StatusExt as _;

use crate::common::Backend;
use crate::helpers::*;

async fn admin_rpcs_need_an_admin_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let list = ListClientsRequest::default();
    let err = app.clients().list_clients(list.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("Bearer"), "{}", err.message());
    let err = app
        .clients()
        .list_clients(authed(list.clone(), "not.a.jwt"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let reader = app.bootstrap("system", "read").await;
    let token = app.token(&reader, &[]).await;
    let err = app
        .clients()
        .list_clients(authed(list.clone(), &token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("tokend.admin"), "{}", err.message());
    // Malformed authorization metadata.
    let mut request = Request::new(list.clone());
    request
        .metadata_mut()
        .insert("authorization", "Basic abc".parse().unwrap());
    assert_eq!(
        app.clients()
            .list_clients(request)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let mut request = Request::new(list);
    let value = tonic::metadata::MetadataValue::try_from(&b"Bearer \xff\xfe"[..]).unwrap();
    request.metadata_mut().insert("authorization", value);
    assert_eq!(
        app.clients()
            .list_clients(request)
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );

    // Removing tokend.admin from a client takes its power away at once, not at token expiry.
    let root = app.admin("system").await;
    let (ops, ops_creds) = app
        .create_client(&root, client("system", "ops", &["tokend.admin"]))
        .await;
    let ops_token = app.token(&ops_creds, &[]).await;
    let list = || authed(ListClientsRequest::default(), &ops_token);
    app.clients().list_clients(list()).await.unwrap();
    let demoted = Client {
        scopes: vec!["read".into()],
        ..ops
    };
    app.update_client(&root, demoted, &["scopes"])
        .await
        .unwrap();
    let err = app.clients().list_clients(list()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

async fn tenants_are_isolated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let root = app.admin("system").await;
    let acme = app.admin("acme").await;
    let globex = app.admin("globex").await;
    let (acme_client, _) = app
        .create_client(&acme, client("", "acme-svc", &["read"]))
        .await;
    assert_eq!(
        acme_client.tenant, "acme",
        "tenant defaults to the admin's own"
    );
    let (globex_client, _) = app
        .create_client(&root, client("globex", "globex-svc", &["read"]))
        .await;

    // Another tenant's client does not exist, as far as acme's admin can tell.
    let get = |id: &str| GetClientRequest {
        client_id: id.into(),
    };
    let err = app
        .clients()
        .get_client(authed(get(&globex_client.client_id), &acme))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let missing = uuid::Uuid::now_v7().to_string();
    let err2 = app
        .clients()
        .get_client(authed(get(&missing), &acme))
        .await
        .unwrap_err();
    assert_eq!(err2.code(), Code::NotFound);
    for (rpc, code) in [
        (
            app.try_delete_client(&acme, &globex_client.client_id).await,
            Code::NotFound,
        ),
        (
            app.clients()
                .rotate_client_secret(authed(
                    RotateClientSecretRequest {
                        client_id: globex_client.client_id.clone(),
                        grace_period: None,
                    },
                    &acme,
                ))
                .await
                .map(|_| ()),
            Code::NotFound,
        ),
        (
            app.clients()
                .create_client(authed(
                    CreateClientRequest {
                        client: Some(client("globex", "x", &[])),
                    },
                    &acme,
                ))
                .await
                .map(|_| ()),
            Code::PermissionDenied,
        ),
        (
            app.clients()
                .list_clients(authed(
                    ListClientsRequest {
                        tenant: "globex".into(),
                        ..Default::default()
                    },
                    &acme,
                ))
                .await
                .map(|_| ()),
            Code::PermissionDenied,
        ),
    ] {
        assert_eq!(rpc.unwrap_err().code(), code);
    }
    // globex's own admin still sees its client: nothing was deleted.
    app.clients()
        .get_client(authed(get(&globex_client.client_id), &globex))
        .await
        .unwrap();

    // Listing: each tenant admin sees its own; system sees all.
    let names = |token: &str| {
        let mut c = app.clients();
        let token = token.to_owned();
        async move {
            let r = c
                .list_clients(authed(ListClientsRequest::default(), &token))
                .await
                .unwrap()
                .into_inner();
            r.clients.into_iter().map(|c| c.tenant).collect::<Vec<_>>()
        }
    };
    assert!(names(&acme).await.iter().all(|t| t == "acme"));
    assert!(names(&globex).await.iter().all(|t| t == "globex"));
    let all = names(&root).await;
    assert!(
        all.contains(&"acme".to_owned())
            && all.contains(&"globex".to_owned())
            && all.contains(&"system".to_owned())
    );

    // Introspection honours the same boundary.
    let acme_introspector = app.introspector("acme").await;
    let globex_token = app.token(&app.bootstrap("globex", "read").await, &[]).await;
    assert!(
        !app.introspect(&acme_introspector, &globex_token)
            .await
            .active
    );
    let root_introspector = app.introspector("system").await;
    assert!(
        app.introspect(&root_introspector, &globex_token)
            .await
            .active
    );
}

async fn update_with_field_mask(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let (created, _) = app
        .create_client(&admin, client("acme", "old", &["read"]))
        .await;
    let mut change = created.clone();
    change.name = "new".into();
    change.description = "ignored: not in mask".into();
    change.access_token_ttl = Some(prost_types::Duration {
        seconds: 60,
        nanos: 0,
    });
    change.metadata.insert("team".into(), "payments".into());
    let updated = app
        .update_client(
            &admin,
            change.clone(),
            &["name", "access_token_ttl", "metadata"],
        )
        .await
        .unwrap();
    assert_eq!(updated.name, "new");
    assert_eq!(updated.description, "");
    assert_eq!(updated.access_token_ttl.unwrap().seconds, 60);
    assert_eq!(updated.metadata["team"], "payments");
    assert_eq!(updated.create_time, created.create_time);
    let fetched = app.get_client(&admin, &created.client_id.clone()).await;
    assert_eq!(fetched, updated);

    for (paths, needle) in [
        (&[][..], "update_mask"),
        (&["tenant"], "cannot be changed"),
        (&["nmae"], "unknown path"),
    ] {
        let err = app
            .update_client(&admin, change.clone(), paths)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{paths:?}");
        assert!(err.message().contains(needle), "{}", err.message());
    }
    // A failed update changes nothing.
    let mut bad = change.clone();
    bad.name = "fine".into();
    bad.scopes = vec!["bad scope".into()];
    let err = app
        .update_client(&admin, bad, &["name", "scopes"])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let after = app.get_client(&admin, &created.client_id.clone()).await;
    assert_eq!(after, fetched);
}

async fn list_pages_through_everything(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("acme").await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(
            app.create_client(&admin, client("", &format!("c{i}"), &[]))
                .await
                .0
                .client_id,
        );
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let r = app
            .clients()
            .list_clients(authed(
                ListClientsRequest {
                    page_size: 2,
                    page_token: token.clone(),
                    tenant: String::new(),
                },
                &admin,
            ))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        seen.extend(r.clients.into_iter().map(|c| c.client_id));
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    // The bootstrap admin is in tenant acme too: six clients, three pages, creation order.
    assert_eq!(seen.len(), 6);
    assert_eq!(pages, 3);
    assert_eq!(&seen[1..], &created[..]);
    for (page_token, tenant) in [("garbage!", ""), (token.as_str(), "system")] {
        let err = app
            .clients()
            .list_clients(authed(
                ListClientsRequest {
                    page_size: 2,
                    page_token: page_token.into(),
                    tenant: tenant.into(),
                },
                &admin,
            ))
            .await
            .unwrap_err();
        assert!(
            matches!(err.code(), Code::InvalidArgument | Code::PermissionDenied),
            "{err:?}"
        );
    }
    let err = app
        .clients()
        .list_clients(authed(
            ListClientsRequest {
                page_size: 2,
                page_token: "garbage!".into(),
                tenant: String::new(),
            },
            &admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("page_token"));
}

async fn rotate_secret_with_and_without_grace(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let (c, first) = app
        .create_client(&admin, client("acme", "svc", &["read"]))
        .await;
    let rotate = |grace: i64| {
        let mut clients = app.clients();
        let admin = admin.clone();
        let id = c.client_id.clone();
        async move {
            clients
                .rotate_client_secret(authed(
                    RotateClientSecretRequest {
                        client_id: id,
                        grace_period: Some(prost_types::Duration {
                            seconds: grace,
                            nanos: 0,
                        }),
                    },
                    &admin,
                ))
                .await
                .map(|r| r.into_inner())
        }
    };
    let second = Creds {
        client_id: c.client_id.clone(),
        client_secret: rotate(60).await.unwrap().client_secret,
    };
    assert_ne!(second.client_secret, first.client_secret);
    // Inside the grace period both work; after it only the new one.
    app.token(&first, &[]).await;
    app.token(&second, &[]).await;
    app.advance(Duration::from_secs(61));
    assert_eq!(
        app.try_token(&first, &[], &[]).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    app.token(&second, &[]).await;
    // Grace 0 revokes at once.
    let third = Creds {
        client_id: c.client_id.clone(),
        client_secret: rotate(0).await.unwrap().client_secret,
    };
    assert_eq!(
        app.try_token(&second, &[], &[]).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    app.token(&third, &[]).await;
    assert_eq!(rotate(-5).await.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(
        rotate(31 * 24 * 3600).await.unwrap_err().code(),
        Code::InvalidArgument
    );
}

async fn delete_makes_tokens_inactive(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let introspector = app.introspector("system").await;
    let (c, creds) = app
        .create_client(&admin, client("acme", "svc", &["read"]))
        .await;
    let token = app.token(&creds, &[]).await;
    assert!(app.introspect(&introspector, &token).await.active);
    app.try_delete_client(&admin, &c.client_id).await.unwrap();
    assert!(!app.introspect(&introspector, &token).await.active);
    let err = app
        .clients()
        .get_client(authed(
            GetClientRequest {
                client_id: c.client_id.clone(),
            },
            &admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(
        app.try_token(&creds, &[], &[]).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let err = app
        .try_delete_client(&admin, &c.client_id)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

async fn bad_input_is_named_and_writes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("system").await;
    let cases: Vec<(Client, &str)> = vec![
        (client("acme", "", &[]), "client.name"),
        (client("Not A Tenant", "x", &[]), "client.tenant"),
        (
            client("acme", "x", &["ok", "bad\"quote"]),
            "client.scopes[1]",
        ),
        (
            Client {
                allowed_cidrs: vec!["300.0.0.0/8".into()],
                ..client("acme", "x", &[])
            },
            "client.allowed_cidrs[0]",
        ),
        (
            Client {
                access_token_ttl: Some(prost_types::Duration {
                    seconds: 0,
                    nanos: 0,
                }),
                ..client("acme", "x", &[])
            },
            "client.access_token_ttl",
        ),
        (
            Client {
                name: "n".repeat(201),
                ..client("acme", "x", &[])
            },
            "client.name",
        ),
    ];
    for (spec, field) in cases {
        let err = app
            .clients()
            .create_client(authed(CreateClientRequest { client: Some(spec) }, &admin))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        assert!(
            err.message().starts_with(field),
            "{field}: {}",
            err.message()
        );
        let details = err.get_error_details();
        let violations = &details
            .bad_request()
            .expect("BadRequest detail")
            .field_violations;
        assert_eq!(violations[0].field, field);
    }
    let err = app
        .clients()
        .create_client(authed(CreateClientRequest { client: None }, &admin))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = app
        .clients()
        .get_client(authed(
            GetClientRequest {
                client_id: "nope".into(),
            },
            &admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // Nothing was half-written: only the bootstrap admin exists.
    let listed = app
        .clients()
        .list_clients(authed(ListClientsRequest::default(), &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.clients.len(), 1);
}

for_each_backend!(
    admin_rpcs_need_an_admin_token,
    tenants_are_isolated,
    update_with_field_mask,
    list_pages_through_everything,
    rotate_secret_with_and_without_grace,
    delete_makes_tokens_inactive,
    bad_input_is_named_and_writes_nothing,
);
