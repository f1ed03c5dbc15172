//! Conversions between protobuf messages and domain types.

use std::time::Duration;

use time::OffsetDateTime;
use tonic::Status;

use super::error::invalid;
use crate::domain::clients::FederatedCredential;
use crate::domain::{ActiveToken, Actor, Client, ClientInput, ClientSpec, PublicJwk, TokenFormat};
use crate::proto;

/// A protobuf timestamp.
pub fn timestamp(t: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: i32::try_from(t.nanosecond()).unwrap_or(0),
    }
}

/// A protobuf timestamp as a time; `field` names it in the error.
pub fn time(
    field: &str,
    t: Option<prost_types::Timestamp>,
) -> Result<Option<OffsetDateTime>, Status> {
    t.map(|t| {
        let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
        if !(0..1_000_000_000).contains(&t.nanos) {
            return Err(invalid(field, "nanos must be between 0 and 999999999"));
        }
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .map_err(|_| invalid(field, "is out of range"))
    })
    .transpose()
}

fn proto_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: 0,
    }
}

/// A protobuf duration as a non-negative `Duration`; `field` names it in the error.
pub fn duration(field: &str, d: Option<prost_types::Duration>) -> Result<Option<Duration>, Status> {
    d.map(|d| Duration::try_from(d).map_err(|_| invalid(field, "must be a non-negative duration")))
        .transpose()
}

/// The client as the API shows it.
pub fn client(c: &Client) -> proto::Client {
    proto::Client {
        client_id: c.id.to_string(),
        tenant: c.tenant.to_string(),
        create_time: Some(timestamp(c.create_time)),
        update_time: Some(timestamp(c.update_time)),
        last_used_time: c.last_used_time.map(timestamp),
        ..spec(&c.spec)
    }
}

/// A client's settings as the API shows them, in their normal form (sets sorted, networks
/// written canonically), without its id, tenant and times: what `tokend admin apply` compares.
pub fn spec(s: &ClientSpec) -> proto::Client {
    let [dn, dns, uri, ip, email] = s.tls_subject.texts();
    proto::Client {
        tls_client_auth_subject_dn: dn,
        tls_client_auth_san_dns: dns,
        tls_client_auth_san_uri: uri,
        tls_client_auth_san_ip: ip,
        tls_client_auth_san_email: email,
        tls_client_certificate_bound_access_tokens: s.certificate_bound_tokens,
        name: s.name.clone(),
        description: s.description.clone(),
        scopes: s.scopes.to_strings(),
        audiences: s.audiences.iter().cloned().collect(),
        roles: s.roles.iter().cloned().collect(),
        access_token_ttl: Some(proto_duration(s.access_token_ttl)),
        refresh_token_ttl: Some(proto_duration(s.refresh_token_ttl)),
        active: Some(s.active),
        allowed_cidrs: s.allowed_cidrs.iter().map(ToString::to_string).collect(),
        rate_limit_per_minute: s.rate_limit_per_minute,
        refresh_rate_limit_per_minute: s.refresh_rate_limit_per_minute,
        api_rate_limit_per_minute: s.api_rate_limit_per_minute,
        metadata: s.metadata.clone().into_iter().collect(),
        exchange_audiences: s.exchange_audiences.iter().cloned().collect(),
        auth_methods: s.auth_methods.names(),
        jwks: s.jwks_text(),
        jwks_uri: s.jwks_uri.clone().unwrap_or_default(),
        federated_credentials: s
            .federated_credentials
            .iter()
            .map(|f| proto::FederatedCredential {
                issuer: f.issuer.clone(),
                subject: f.subject.clone(),
            })
            .collect(),
        access_token_format: match s.access_token_format {
            TokenFormat::Jwt => proto::AccessTokenFormat::Jwt,
            TokenFormat::Opaque => proto::AccessTokenFormat::Opaque,
        }
        .into(),
        ..proto::Client::default()
    }
}

/// The raw input the domain validates.
pub fn client_input(c: proto::Client) -> Result<ClientInput, Status> {
    Ok(ClientInput {
        access_token_ttl: duration("client.access_token_ttl", c.access_token_ttl)?,
        refresh_token_ttl: duration("client.refresh_token_ttl", c.refresh_token_ttl)?,
        tenant: c.tenant,
        name: c.name,
        description: c.description,
        scopes: c.scopes,
        audiences: c.audiences,
        roles: c.roles,
        active: c.active,
        allowed_cidrs: c.allowed_cidrs,
        rate_limit_per_minute: c.rate_limit_per_minute,
        refresh_rate_limit_per_minute: c.refresh_rate_limit_per_minute,
        api_rate_limit_per_minute: c.api_rate_limit_per_minute,
        metadata: c.metadata.into_iter().collect(),
        exchange_audiences: c.exchange_audiences,
        auth_methods: c.auth_methods,
        jwks: c.jwks,
        jwks_uri: c.jwks_uri,
        federated_credentials: c
            .federated_credentials
            .into_iter()
            .map(|f| FederatedCredential {
                issuer: f.issuer,
                subject: f.subject,
            })
            .collect(),
        tls_client_auth_subject: [
            c.tls_client_auth_subject_dn,
            c.tls_client_auth_san_dns,
            c.tls_client_auth_san_uri,
            c.tls_client_auth_san_ip,
            c.tls_client_auth_san_email,
        ],
        tls_client_certificate_bound_access_tokens: c.tls_client_certificate_bound_access_tokens,
        access_token_format: match proto::AccessTokenFormat::try_from(c.access_token_format) {
            Ok(proto::AccessTokenFormat::Unspecified) => None,
            Ok(proto::AccessTokenFormat::Jwt) => Some(TokenFormat::Jwt),
            Ok(proto::AccessTokenFormat::Opaque) => Some(TokenFormat::Opaque),
            Err(_) => {
                return Err(invalid(
                    "client.access_token_format",
                    format!(
                        "unknown value {}: use ACCESS_TOKEN_FORMAT_JWT or ACCESS_TOKEN_FORMAT_OPAQUE",
                        c.access_token_format
                    ),
                ));
            }
        },
    })
}

/// RFC 7662 members of an active token.
pub fn introspection(active: Option<ActiveToken>) -> proto::IntrospectResponse {
    let Some(active) = active else {
        return proto::IntrospectResponse::default();
    };
    let c = active.claims();
    proto::IntrospectResponse {
        active: true,
        scopes: active.scopes().to_strings(),
        client_id: c.client_id.clone(),
        sub: c.sub.clone(),
        aud: c.aud.clone(),
        iss: c.iss.clone(),
        exp: c.exp,
        iat: c.iat,
        nbf: c.nbf,
        jti: c.jti.clone(),
        token_type: "Bearer".into(),
        tenant: c.tenant.clone(),
        roles: c.roles.clone(),
        act: c.act.as_ref().map(actor),
        cnf: c.cnf.as_ref().map(|cnf| proto::Confirmation {
            x5t_s256: cnf.x5t_s256.clone(),
        }),
    }
}

/// `client_certificate_thumbprint` of an IntrospectRequest: empty is none; anything else must
/// be an `x5t#S256`.
pub fn thumbprint(raw: &str) -> Result<Option<&str>, Status> {
    use crate::domain::clients::certificate::{bad_thumbprint, is_thumbprint};
    match raw {
        "" => Ok(None),
        raw if is_thumbprint(raw) => Ok(Some(raw)),
        _ => Err(super::error::to_status(bad_thumbprint())),
    }
}

/// The `act` chain.
fn actor(a: &Actor) -> proto::Actor {
    proto::Actor {
        sub: a.sub.clone(),
        act: a.act.as_deref().map(actor).map(Box::new),
    }
}

/// One JWK.
pub fn jwk(k: PublicJwk) -> proto::Jwk {
    proto::Jwk {
        kty: k.kty,
        kid: k.kid,
        r#use: k.use_,
        alg: k.alg,
        crv: k.crv.unwrap_or_default(),
        x: k.x.unwrap_or_default(),
        y: k.y.unwrap_or_default(),
        n: k.n.unwrap_or_default(),
        e: k.e.unwrap_or_default(),
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use tonic::Code;

    use super::*;

    proptest! {
        #[test]
        fn non_negative_durations_convert_exactly(
            seconds in 0..i64::MAX / 2,
            nanos in 0..1_000_000_000i32,
        ) {
            let d = duration("ttl", Some(prost_types::Duration { seconds, nanos })).unwrap();
            let d = d.unwrap();
            prop_assert_eq!((d.as_secs(), d.subsec_nanos()), (seconds as u64, nanos as u32));
        }

        #[test]
        fn arbitrary_durations_never_panic_and_only_negative_ones_fail(
            seconds in any::<i64>(),
            nanos in any::<i32>(),
        ) {
            let total = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
            match duration("ttl", Some(prost_types::Duration { seconds, nanos })) {
                Ok(d) => {
                    prop_assert!(total >= 0);
                    // Exact unless normalising the nanos overflowed the seconds (then saturated).
                    if seconds.unsigned_abs() < u64::MAX / 4 {
                        prop_assert_eq!(d.unwrap().as_nanos() as i128, total);
                    }
                }
                Err(status) => {
                    prop_assert!(total < 0);
                    prop_assert_eq!(status.code(), Code::InvalidArgument);
                    prop_assert!(status.message().contains("ttl"), "{}", status.message());
                }
            }
        }
    }

    #[test]
    fn an_absent_duration_is_none() {
        assert_eq!(duration("ttl", None).unwrap(), None);
    }
}
