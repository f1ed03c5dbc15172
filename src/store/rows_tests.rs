//! The rows' conversions: round trips, and corrupt rows named.

use time::OffsetDateTime;

use super::*;

#[test]
fn clients_round_trip_through_rows() {
    let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    let input = ClientInput {
        tenant: "acme".into(),
        name: "billing".into(),
        scopes: vec!["read:*".into()],
        audiences: vec!["https://api".into()],
        allowed_cidrs: vec!["10.0.0.0/8".into()],
        metadata: BTreeMap::from([("team".into(), "payments".into())]),
        ..Default::default()
    };
    let client = Client {
        id: ClientId::generate(),
        tenant: TenantId::parse("tenant", "acme").unwrap(),
        spec: ClientSpec::from_input(&input).unwrap(),
        create_time: now,
        update_time: now,
        last_used_time: Some(now),
        revision: 1,
        token_generation: 3,
    };
    assert_eq!(Client::try_from(ClientRow::from(&client)).unwrap(), client);
}

#[test]
fn a_client_row_that_no_longer_parses_is_corrupt_and_named() {
    let mut row = ClientRow::from(&Client {
        id: ClientId::generate(),
        tenant: TenantId::parse("tenant", "acme").unwrap(),
        spec: ClientSpec::from_input(&ClientInput {
            tenant: "acme".into(),
            name: "n".into(),
            ..Default::default()
        })
        .unwrap(),
        create_time: OffsetDateTime::UNIX_EPOCH,
        update_time: OffsetDateTime::UNIX_EPOCH,
        last_used_time: None,
        revision: 1,
        token_generation: 0,
    });
    row.access_token_format = "paper".into();
    let err = Client::try_from(row.clone()).unwrap_err().to_string();
    assert!(
        err.contains(&row.client_id) && err.contains("paper"),
        "{err}"
    );
}

#[test]
fn audit_events_round_trip_through_rows() {
    let now = OffsetDateTime::now_utc();
    let mut e = AuditEvent::new(AuditKind::ClientUpdated, now).with("fields", "scopes");
    e.tenant = "acme".into();
    e.client_id = "c".into();
    e.actor = "admin".into();
    e.source_address = Some("192.0.2.1".parse().unwrap());
    assert_eq!(AuditEvent::try_from(AuditRow::from(&e)).unwrap(), e);
}

#[test]
fn an_unknown_audit_kind_is_a_corrupt_row_not_a_panic() {
    let mut row = AuditRow::from(&AuditEvent::new(
        AuditKind::ClientUpdated,
        OffsetDateTime::now_utc(),
    ));
    row.kind = "nonsense".into();
    let err = AuditEvent::try_from(row).unwrap_err();
    assert!(err.to_string().contains("nonsense"), "{err}");
}
