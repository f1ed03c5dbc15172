//! Clients: create, read, list, optimistic update, delete, the last-use mark, and a client
//! that authenticates with its own key and has no secret.

use tokend::domain::Client;
use tokend::domain::clients::{ClientInput, ClientSpec};
use tokend::store::StoreError;

use crate::common::Backend;
use crate::ids::{C1, C2, C3, C4, GHOST, NOPE};
use crate::{at, audit_row, client, open, raw_text, secret};

/// An Ed25519 public key (the RFC 8037 example key).
const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

/// A client of tenant `acme` that authenticates only with its own key.
pub(crate) fn key_only_client(id: &str) -> Client {
    let mut c = client(id, "acme");
    let input = ClientInput {
        name: "key only".into(),
        auth_methods: vec!["private_key_jwt".into()],
        jwks: JWKS.into(),
        ..Default::default()
    };
    c.spec = ClientSpec::from_input(&input).expect("a valid key-only client");
    c
}

async fn a_key_only_client_round_trips_without_a_secret(backend: Backend) {
    let (_db, s) = open(backend).await;
    let c = key_only_client(C1);
    s.insert_client(&c, None, &[]).await.unwrap();
    let stored = s.get_client(C1).await.unwrap().expect("stored");
    assert_eq!(stored, c);
    assert_eq!(stored.spec.auth_methods.names(), ["private_key_jwt"]);
    assert!(stored.spec.jwks.unwrap().select(Some("k1")).is_some());
    assert!(s.live_secret_hashes(C1, 0).await.unwrap().is_empty());
}

async fn client_round_trip(backend: Backend) {
    let (_db, s) = open(backend).await;
    let c = client(C1, "acme");
    s.insert_client(&c, Some(&secret("s1", C1, 1)), &[])
        .await
        .unwrap();
    assert_eq!(s.get_client(C1).await.unwrap(), Some(c));
    assert_eq!(s.get_client(NOPE).await.unwrap(), None);
}

async fn duplicate_client_is_already_exists(backend: Backend) {
    let (_db, s) = open(backend).await;
    s.insert_client(&client(C1, "a"), Some(&secret("s1", C1, 1)), &[])
        .await
        .unwrap();
    let err = s
        .insert_client(&client(C1, "a"), Some(&secret("s2", C1, 1)), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists), "{err:?}");
    // The failed insert left nothing behind: still exactly one secret.
    assert_eq!(s.live_secret_hashes(C1, 0).await.unwrap(), vec!["hash-s1"]);
}

async fn list_filters_orders_and_pages(backend: Backend) {
    let (_db, s) = open(backend).await;
    for (id, tenant) in [(C3, "a"), (C1, "a"), (C2, "b"), (C4, "a")] {
        s.insert_client(
            &client(id, tenant),
            Some(&secret(&format!("s{id}"), id, 1)),
            &[],
        )
        .await
        .unwrap();
    }
    let ids = |rows: Vec<Client>| {
        rows.into_iter()
            .map(|r| r.id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(s.list_clients(None, None, 10).await.unwrap()),
        [C1, C2, C3, C4]
    );
    assert_eq!(
        ids(s.list_clients(Some("a"), None, 10).await.unwrap()),
        [C1, C3, C4]
    );
    assert_eq!(
        ids(s.list_clients(Some("a"), Some(C1), 1).await.unwrap()),
        [C3]
    );
    assert_eq!(
        ids(s.list_clients(None, Some(C4), 10).await.unwrap()),
        Vec::<String>::new()
    );
}

async fn update_is_optimistic(backend: Backend) {
    let (_db, s) = open(backend).await;
    s.insert_client(&client(C1, "a"), Some(&secret("s1", C1, 1)), &[])
        .await
        .unwrap();
    let mut next = client(C1, "a");
    next.spec.name = "renamed".into();
    next.spec.active = false;
    next.revision = 2;
    s.update_client(&next, 1, false, &[]).await.unwrap();
    assert_eq!(s.get_client(C1).await.unwrap(), Some(next.clone()));
    let err = s.update_client(&next, 1, false, &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    let err = s
        .update_client(&client(GHOST, "a"), 1, false, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

async fn delete_cascades_to_secrets(backend: Backend) {
    let (_db, s) = open(backend).await;
    s.insert_client(&client(C1, "a"), Some(&secret("s1", C1, 1)), &[])
        .await
        .unwrap();
    assert!(s.delete_client(C1, 5, &[]).await.unwrap());
    assert!(!s.delete_client(C1, 6, &[]).await.unwrap());
    assert!(s.live_secret_hashes(C1, 0).await.unwrap().is_empty());
    // The id can be reused only as a new client; the old secret did not survive.
    s.insert_client(&client(C1, "a"), Some(&secret("s9", C1, 1)), &[])
        .await
        .unwrap();
    assert_eq!(s.live_secret_hashes(C1, 0).await.unwrap(), vec!["hash-s9"]);
}

async fn touch_only_moves_forward(backend: Backend) {
    let (_db, s) = open(backend).await;
    s.insert_client(&client(C1, "a"), Some(&secret("s1", C1, 1)), &[])
        .await
        .unwrap();
    s.touch_client(C1, 5_000, None).await.unwrap();
    s.touch_client(C1, 4_000, None).await.unwrap();
    let row = s.get_client(C1).await.unwrap().unwrap();
    assert_eq!(row.last_used_time, Some(at(5_000)));
    assert_eq!(row.revision, 1, "touching is not a configuration change");
}

async fn last_use_keeps_the_address(backend: Backend) {
    let (_db, s) = open(backend).await;
    s.insert_client(&client(C1, "a"), Some(&secret("s1", C1, 1)), &[])
        .await
        .unwrap();
    assert_eq!(s.last_use(C1).await.unwrap(), Some((None, None)));
    s.touch_client(C1, 5_000, Some("192.0.2.9")).await.unwrap();
    s.touch_client(C1, 4_000, Some("192.0.2.1")).await.unwrap();
    assert_eq!(
        s.last_use(C1).await.unwrap(),
        Some((Some(5_000), Some("192.0.2.9".into())))
    );
    assert_eq!(s.last_use(GHOST).await.unwrap(), None);
}

/// The list and map columns hold plain JSON, as they always have: Postgres `jsonb` (which
/// prints it normalised), SQLite the text serde writes. Databases written before keep working.
async fn json_columns_hold_plain_json(backend: Backend) {
    let (db, s) = open(backend).await;
    let audit = [audit_row("e1", C1, 1_000, "client_created")];
    s.insert_client(&client(C1, "a"), Some(&secret("s1", C1, 1)), &audit)
        .await
        .unwrap();
    let scopes = raw_text(&db, "SELECT CAST(scopes AS TEXT) FROM clients").await;
    let roles = raw_text(&db, "SELECT CAST(roles AS TEXT) FROM clients").await;
    let metadata = raw_text(&db, "SELECT CAST(metadata AS TEXT) FROM clients").await;
    let details = raw_text(&db, "SELECT CAST(details AS TEXT) FROM audit_events").await;
    assert_eq!(scopes, [r#"["read:*"]"#]);
    assert_eq!(roles, ["[]"]);
    match backend {
        Backend::Postgres => {
            assert_eq!(metadata, [r#"{"team": "payments"}"#]);
            assert_eq!(details, [r#"{"fields": "scopes"}"#]);
        }
        Backend::Sqlite => {
            assert_eq!(metadata, [r#"{"team":"payments"}"#]);
            assert_eq!(details, [r#"{"fields":"scopes"}"#]);
        }
    }
}

for_each_backend!(
    client_round_trip,
    a_key_only_client_round_trips_without_a_secret,
    json_columns_hold_plain_json,
    duplicate_client_is_already_exists,
    list_filters_orders_and_pages,
    update_is_optimistic,
    delete_cascades_to_secrets,
    touch_only_moves_forward,
    last_use_keeps_the_address,
);
