//! The client aggregate: a registered machine identity and the policy its tokens follow.
//! Input arrives raw (`ClientInput`) and becomes a validated `ClientSpec` field by field, the
//! same code path serving create (every field) and update (the fields in the mask).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ipnet::IpNet;
use time::OffsetDateTime;

use super::clock::{from_micros, to_micros};
use super::error::{Error, Result};
use super::ids::{ClientId, TenantId};
use super::scope::ScopeSet;
use crate::store::ClientRow;

/// Default access-token lifetime.
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// Longest lifetime of a JWT access token: a verifier that checks signatures itself cannot
/// learn of a revocation, so JWTs stay short. Keys are kept for this long after they stop
/// signing.
pub const MAX_ACCESS_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest lifetime of an opaque access token (API keys for bots): every use is introspected,
/// so revocation always applies at once.
pub const MAX_OPAQUE_ACCESS_TTL: Duration = Duration::from_secs(366 * 24 * 3600);
const MAX_REFRESH_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 2000;
const MAX_LIST: usize = 100;
const MAX_ITEM: usize = 256;
const MAX_METADATA: usize = 64;
const MAX_METADATA_KEY: usize = 63;
const MAX_METADATA_VALUE: usize = 1024;

/// A client's fields as a caller sent them, before validation.
#[derive(Debug, Clone, Default)]
pub struct ClientInput {
    pub tenant: String,
    pub name: String,
    pub description: String,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub roles: Vec<String>,
    pub access_token_ttl: Option<Duration>,
    pub refresh_token_ttl: Option<Duration>,
    /// Unset means active.
    pub active: Option<bool>,
    pub allowed_cidrs: Vec<String>,
    pub rate_limit_per_minute: u32,
    pub metadata: BTreeMap<String, String>,
    /// Unset means JWT.
    pub access_token_format: Option<TokenFormat>,
    pub exchange_audiences: Vec<String>,
}

/// How a client's access tokens look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenFormat {
    /// Signed JWTs (RFC 9068): verifiable locally with the JWKS, or by `Introspect`.
    #[default]
    Jwt,
    /// Random strings stored as hashes: only `Introspect` can tell what they mean.
    Opaque,
}

impl TokenFormat {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jwt => "jwt",
            Self::Opaque => "opaque",
        }
    }

    fn parse_stored(raw: &str) -> Option<Self> {
        match raw {
            "jwt" => Some(Self::Jwt),
            "opaque" => Some(Self::Opaque),
            _ => None,
        }
    }
}

/// A mutable field of a client, as named in an update mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientField {
    Name,
    Description,
    Scopes,
    Audiences,
    Roles,
    AccessTokenTtl,
    RefreshTokenTtl,
    Active,
    AllowedCidrs,
    RateLimitPerMinute,
    Metadata,
    AccessTokenFormat,
    ExchangeAudiences,
}

impl ClientField {
    /// Every mutable field.
    pub const ALL: [ClientField; 13] = [
        ClientField::Name,
        ClientField::Description,
        ClientField::Scopes,
        ClientField::Audiences,
        ClientField::Roles,
        ClientField::AccessTokenTtl,
        ClientField::RefreshTokenTtl,
        ClientField::Active,
        ClientField::AllowedCidrs,
        ClientField::RateLimitPerMinute,
        ClientField::Metadata,
        ClientField::AccessTokenFormat,
        ClientField::ExchangeAudiences,
    ];

    /// The field's name in the API.
    pub fn path(self) -> &'static str {
        match self {
            ClientField::Name => "name",
            ClientField::Description => "description",
            ClientField::Scopes => "scopes",
            ClientField::Audiences => "audiences",
            ClientField::Roles => "roles",
            ClientField::AccessTokenTtl => "access_token_ttl",
            ClientField::RefreshTokenTtl => "refresh_token_ttl",
            ClientField::Active => "active",
            ClientField::AllowedCidrs => "allowed_cidrs",
            ClientField::RateLimitPerMinute => "rate_limit_per_minute",
            ClientField::Metadata => "metadata",
            ClientField::AccessTokenFormat => "access_token_format",
            ClientField::ExchangeAudiences => "exchange_audiences",
        }
    }

    /// Parses update-mask paths; `*` means every mutable field.
    pub fn parse_mask<S: AsRef<str>>(paths: &[S]) -> Result<Vec<ClientField>> {
        if paths.is_empty() {
            return Err(Error::invalid(
                "update_mask",
                "is required: name the fields to change, or \"*\" for all",
            ));
        }
        let mut fields = Vec::new();
        for path in paths {
            let path = path
                .as_ref()
                .strip_prefix("client.")
                .unwrap_or(path.as_ref());
            match path {
                "*" => fields.extend(Self::ALL),
                "client_id" | "tenant" | "create_time" | "update_time" | "last_used_time" => {
                    return Err(Error::invalid(
                        "update_mask",
                        format!("{path:?} cannot be changed"),
                    ));
                }
                _ => match Self::ALL.into_iter().find(|f| f.path() == path) {
                    Some(f) => fields.push(f),
                    None => {
                        let known: Vec<&str> = Self::ALL.iter().map(|f| f.path()).collect();
                        return Err(Error::invalid(
                            "update_mask",
                            format!("unknown path {path:?}; known: {}", known.join(", ")),
                        ));
                    }
                },
            }
        }
        fields.dedup();
        Ok(fields)
    }
}

/// A client's validated, mutable settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSpec {
    pub name: String,
    pub description: String,
    pub scopes: ScopeSet,
    pub audiences: BTreeSet<String>,
    pub roles: BTreeSet<String>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub active: bool,
    pub allowed_cidrs: Vec<IpNet>,
    pub rate_limit_per_minute: u32,
    pub metadata: BTreeMap<String, String>,
    pub access_token_format: TokenFormat,
    /// Audiences this client may exchange other tokens for (RFC 8693); empty: no exchange.
    pub exchange_audiences: BTreeSet<String>,
}

impl ClientSpec {
    /// Validates every field of `input`.
    pub fn from_input(input: &ClientInput) -> Result<Self> {
        let mut spec = Self {
            name: String::new(),
            description: String::new(),
            scopes: ScopeSet::default(),
            audiences: BTreeSet::new(),
            roles: BTreeSet::new(),
            access_token_ttl: DEFAULT_ACCESS_TTL,
            refresh_token_ttl: Duration::ZERO,
            active: true,
            allowed_cidrs: Vec::new(),
            rate_limit_per_minute: 0,
            metadata: BTreeMap::new(),
            access_token_format: TokenFormat::Jwt,
            exchange_audiences: BTreeSet::new(),
        };
        spec.apply(input, &ClientField::ALL)?;
        Ok(spec)
    }

    /// Validates and sets the named fields from `input`, leaving the others alone. On error
    /// `self` may be partly changed: callers apply to a copy.
    pub fn apply(&mut self, input: &ClientInput, fields: &[ClientField]) -> Result<()> {
        for &field in fields {
            self.set(field, input)?;
        }
        if self.access_token_format == TokenFormat::Jwt && self.access_token_ttl > MAX_ACCESS_TTL {
            return Err(Error::invalid(
                "client.access_token_ttl",
                format!(
                    "JWT access tokens live at most {}s; use access_token_format OPAQUE for \
                     longer-lived tokens",
                    MAX_ACCESS_TTL.as_secs()
                ),
            ));
        }
        Ok(())
    }

    fn set(&mut self, field: ClientField, input: &ClientInput) -> Result<()> {
        let path = format!("client.{}", field.path());
        match field {
            ClientField::Name => self.name = text(&path, &input.name, 1, MAX_NAME)?,
            ClientField::Description => {
                self.description = text(&path, &input.description, 0, MAX_DESCRIPTION)?;
            }
            ClientField::Scopes => self.scopes = ScopeSet::parse(&path, &input.scopes)?,
            ClientField::Audiences => self.audiences = tokens(&path, &input.audiences)?,
            ClientField::Roles => self.roles = tokens(&path, &input.roles)?,
            ClientField::AccessTokenTtl => {
                self.access_token_ttl = match input.access_token_ttl {
                    None => DEFAULT_ACCESS_TTL,
                    Some(ttl) => ttl_in(&path, ttl, Duration::from_secs(1), MAX_OPAQUE_ACCESS_TTL)?,
                }
            }
            ClientField::RefreshTokenTtl => {
                self.refresh_token_ttl = match input.refresh_token_ttl {
                    None => Duration::ZERO,
                    Some(ttl) => ttl_in(&path, ttl, Duration::ZERO, MAX_REFRESH_TTL)?,
                }
            }
            ClientField::Active => self.active = input.active.unwrap_or(true),
            ClientField::AllowedCidrs => self.allowed_cidrs = cidrs(&path, &input.allowed_cidrs)?,
            ClientField::RateLimitPerMinute => {
                self.rate_limit_per_minute = input.rate_limit_per_minute;
            }
            ClientField::Metadata => self.metadata = metadata(&path, &input.metadata)?,
            ClientField::AccessTokenFormat => {
                self.access_token_format = input.access_token_format.unwrap_or_default();
            }
            ClientField::ExchangeAudiences => {
                self.exchange_audiences = tokens(&path, &input.exchange_audiences)?;
            }
        }
        Ok(())
    }
}

fn text(field: &str, raw: &str, min: usize, max: usize) -> Result<String> {
    let n = raw.chars().count();
    if n < min || n > max {
        let need = if min == 0 {
            format!("at most {max} characters")
        } else {
            format!("{min}-{max} characters")
        };
        return Err(Error::invalid(field, format!("must be {need} (got {n})")));
    }
    if raw
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(raw.to_owned())
}

/// Audiences and roles: non-empty, no whitespace or control characters, deduplicated.
fn tokens(field: &str, raw: &[String]) -> Result<BTreeSet<String>> {
    if raw.len() > MAX_LIST {
        return Err(Error::invalid(field, format!("at most {MAX_LIST} entries")));
    }
    raw.iter()
        .enumerate()
        .map(|(i, item)| {
            let bad = item.chars().any(|c| c.is_whitespace() || c.is_control());
            if item.is_empty() || item.len() > MAX_ITEM || bad {
                Err(Error::invalid(
                    format!("{field}[{i}]"),
                    format!("{item:?}: use 1-{MAX_ITEM} characters without spaces"),
                ))
            } else {
                Ok(item.clone())
            }
        })
        .collect()
}

fn ttl_in(field: &str, ttl: Duration, min: Duration, max: Duration) -> Result<Duration> {
    let whole = Duration::from_secs(ttl.as_secs());
    if whole < min || whole > max {
        return Err(Error::invalid(
            field,
            format!(
                "must be between {}s and {}s (got {}s)",
                min.as_secs(),
                max.as_secs(),
                whole.as_secs()
            ),
        ));
    }
    Ok(whole)
}

fn cidrs(field: &str, raw: &[String]) -> Result<Vec<IpNet>> {
    if raw.len() > MAX_LIST {
        return Err(Error::invalid(field, format!("at most {MAX_LIST} entries")));
    }
    let mut nets = raw
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| {
                Error::invalid(
                    format!("{field}[{i}]"),
                    format!("{s:?} is not a CIDR range such as 10.0.0.0/8 or 2001:db8::/32"),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    nets.sort();
    nets.dedup();
    Ok(nets)
}

fn metadata(field: &str, raw: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    if raw.len() > MAX_METADATA {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_METADATA} entries"),
        ));
    }
    for (k, v) in raw {
        if k.is_empty() || k.len() > MAX_METADATA_KEY || k.chars().any(|c| c.is_control()) {
            return Err(Error::invalid(
                field,
                format!("key {k:?}: use 1-{MAX_METADATA_KEY} characters"),
            ));
        }
        if v.len() > MAX_METADATA_VALUE {
            return Err(Error::invalid(
                format!("{field}[{k}]"),
                format!("at most {MAX_METADATA_VALUE} bytes"),
            ));
        }
    }
    Ok(raw.clone())
}

/// A registered client.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub id: ClientId,
    pub tenant: TenantId,
    pub spec: ClientSpec,
    pub create_time: OffsetDateTime,
    pub update_time: OffsetDateTime,
    pub last_used_time: Option<OffsetDateTime>,
    /// Optimistic-concurrency token, bumped by every update.
    pub revision: i64,
    /// Access tokens issued under an older generation are inactive.
    pub token_generation: i64,
}

impl Client {
    /// The row the store keeps.
    pub fn to_row(&self) -> ClientRow {
        let s = &self.spec;
        ClientRow {
            client_id: self.id.as_str().to_owned(),
            tenant: self.tenant.as_str().to_owned(),
            name: s.name.clone(),
            description: s.description.clone(),
            scopes: s.scopes.to_strings(),
            audiences: s.audiences.iter().cloned().collect(),
            roles: s.roles.iter().cloned().collect(),
            access_token_ttl_secs: secs(s.access_token_ttl),
            refresh_token_ttl_secs: secs(s.refresh_token_ttl),
            active: s.active,
            allowed_cidrs: s.allowed_cidrs.iter().map(ToString::to_string).collect(),
            rate_limit_per_minute: i64::from(s.rate_limit_per_minute),
            metadata: s.metadata.clone(),
            access_token_format: s.access_token_format.as_str().to_owned(),
            exchange_audiences: s.exchange_audiences.iter().cloned().collect(),
            create_time_us: to_micros(self.create_time),
            update_time_us: to_micros(self.update_time),
            last_used_time_us: self.last_used_time.map(to_micros),
            revision: self.revision,
            token_generation: self.token_generation,
        }
    }

    /// Parses a stored row. A row that does not parse is corrupt: an `Unexpected` error.
    pub fn from_row(row: ClientRow) -> Result<Self> {
        let corrupt = |e: Error| {
            Error::Unexpected(anyhow::anyhow!(
                "stored client {} is corrupt: {e}",
                row.client_id
            ))
        };
        let input = ClientInput {
            tenant: row.tenant.clone(),
            name: row.name.clone(),
            description: row.description.clone(),
            scopes: row.scopes.clone(),
            audiences: row.audiences.clone(),
            roles: row.roles.clone(),
            access_token_ttl: Some(Duration::from_secs(row.access_token_ttl_secs.max(0) as u64)),
            refresh_token_ttl: Some(Duration::from_secs(row.refresh_token_ttl_secs.max(0) as u64)),
            active: Some(row.active),
            allowed_cidrs: row.allowed_cidrs.clone(),
            rate_limit_per_minute: u32::try_from(row.rate_limit_per_minute).unwrap_or(u32::MAX),
            metadata: row.metadata.clone(),
            access_token_format: Some(
                TokenFormat::parse_stored(&row.access_token_format).ok_or_else(|| {
                    Error::Unexpected(anyhow::anyhow!(
                        "stored client {} has unknown token format {:?}",
                        row.client_id,
                        row.access_token_format
                    ))
                })?,
            ),
            exchange_audiences: row.exchange_audiences.clone(),
        };
        Ok(Self {
            id: ClientId::parse("client_id", &row.client_id).map_err(corrupt)?,
            tenant: TenantId::parse("tenant", &row.tenant).map_err(corrupt)?,
            spec: ClientSpec::from_input(&input).map_err(corrupt)?,
            create_time: from_micros(row.create_time_us),
            update_time: from_micros(row.update_time_us),
            last_used_time: row.last_used_time_us.map(from_micros),
            revision: row.revision,
            token_generation: row.token_generation,
        })
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ClientInput {
        ClientInput {
            tenant: "acme".into(),
            name: "billing".into(),
            scopes: vec!["read:*".into()],
            audiences: vec!["https://api".into(), "https://api".into()],
            allowed_cidrs: vec!["10.1.2.3/8".into()],
            active: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_and_normalisation() {
        let spec = ClientSpec::from_input(&input()).unwrap();
        assert_eq!(spec.access_token_ttl, DEFAULT_ACCESS_TTL);
        assert_eq!(spec.refresh_token_ttl, Duration::ZERO);
        assert_eq!(spec.audiences.len(), 1);
        assert_eq!(spec.allowed_cidrs[0].to_string(), "10.0.0.0/8");
    }

    #[test]
    fn errors_name_the_field() {
        let mut bad = input();
        bad.name = String::new();
        let err = ClientSpec::from_input(&bad).unwrap_err();
        assert!(err.to_string().starts_with("client.name:"), "{err}");
        let mut bad = input();
        bad.allowed_cidrs = vec!["10.0.0.0/8".into(), "nonsense".into()];
        let err = ClientSpec::from_input(&bad).unwrap_err();
        assert!(
            err.to_string().starts_with("client.allowed_cidrs[1]:"),
            "{err}"
        );
        let mut bad = input();
        bad.access_token_ttl = Some(Duration::from_secs(2 * 24 * 3600));
        assert!(ClientSpec::from_input(&bad).is_err());
    }

    #[test]
    fn update_changes_only_masked_fields() {
        let mut spec = ClientSpec::from_input(&input()).unwrap();
        let mut change = input();
        change.name = "renamed".into();
        change.active = Some(false);
        spec.apply(&change, &ClientField::parse_mask(&["active"]).unwrap())
            .unwrap();
        assert!(!spec.active);
        assert_eq!(spec.name, "billing");
    }

    #[test]
    fn mask_parsing() {
        assert_eq!(
            ClientField::parse_mask(&["*"]).unwrap().len(),
            ClientField::ALL.len()
        );
        assert!(ClientField::parse_mask::<&str>(&[]).is_err());
        assert!(ClientField::parse_mask(&["tenant"]).is_err());
        let err = ClientField::parse_mask(&["nmae"]).unwrap_err().to_string();
        assert!(err.contains("unknown path \"nmae\""), "{err}");
        assert_eq!(
            ClientField::parse_mask(&["client.name"]).unwrap(),
            vec![ClientField::Name]
        );
    }

    #[test]
    fn row_round_trip() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let client = Client {
            id: ClientId::generate(),
            tenant: TenantId::parse("tenant", "acme").unwrap(),
            spec: ClientSpec::from_input(&input()).unwrap(),
            create_time: now,
            update_time: now,
            last_used_time: None,
            revision: 1,
            token_generation: 3,
        };
        assert_eq!(Client::from_row(client.to_row()).unwrap(), client);
    }
}

#[cfg(test)]
mod properties {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    /// A CIDR range as text, possibly with host bits set (`10.1.2.3/8`).
    fn cidr() -> impl Strategy<Value = String> {
        prop_oneof![
            (any::<u32>(), 0..=32u8).prop_map(|(a, p)| format!("{}/{p}", Ipv4Addr::from(a))),
            (any::<u128>(), 0..=128u8).prop_map(|(a, p)| format!("{}/{p}", Ipv6Addr::from(a))),
        ]
    }

    proptest! {
        #[test]
        fn cidr_lists_normalise_to_sorted_unique_networks(raw in vec(cidr(), 0..=MAX_LIST)) {
            let nets = cidrs("allowed_cidrs", &raw).unwrap();
            prop_assert!(nets.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
            prop_assert!(nets.iter().all(|n| *n == n.trunc()), "no host bits");
            for text in &raw {
                let net: IpNet = text.parse().unwrap();
                prop_assert!(nets.contains(&net.trunc()), "{text} lost");
            }
        }

        #[test]
        fn normalised_cidrs_parse_back_to_themselves(raw in vec(cidr(), 0..20)) {
            let nets = cidrs("allowed_cidrs", &raw).unwrap();
            let texts: Vec<String> = nets.iter().map(ToString::to_string).collect();
            prop_assert_eq!(cidrs("allowed_cidrs", &texts).unwrap(), nets);
        }

        #[test]
        fn arbitrary_entries_never_panic_and_errors_name_the_first_bad_one(
            raw in vec(prop_oneof![cidr(), any::<String>()], 0..10),
        ) {
            match cidrs("allowed_cidrs", &raw) {
                Ok(nets) => prop_assert!(nets.len() <= raw.len()),
                Err(err) => {
                    let first_bad = raw.iter().position(|s| s.parse::<IpNet>().is_err()).unwrap();
                    let prefix = format!("allowed_cidrs[{first_bad}]:");
                    prop_assert!(err.to_string().starts_with(&prefix), "{err}");
                }
            }
        }

        #[test]
        fn too_many_cidrs_are_refused(extra in 1..10usize) {
            let raw = vec!["10.0.0.0/8".to_owned(); MAX_LIST + extra];
            prop_assert!(cidrs("allowed_cidrs", &raw).is_err());
        }

        #[test]
        fn known_mask_paths_parse_to_their_fields(
            picks in vec((0..ClientField::ALL.len(), any::<bool>()), 1..30),
        ) {
            let paths: Vec<String> = picks
                .iter()
                .map(|&(i, prefixed)| {
                    let path = ClientField::ALL[i].path();
                    if prefixed { format!("client.{path}") } else { path.to_owned() }
                })
                .collect();
            let fields = ClientField::parse_mask(&paths).unwrap();
            let named: BTreeSet<usize> = picks.iter().map(|&(i, _)| i).collect();
            let parsed: BTreeSet<usize> = fields
                .iter()
                .map(|f| ClientField::ALL.iter().position(|a| a == f).unwrap())
                .collect();
            prop_assert_eq!(parsed, named);
        }

        #[test]
        fn immutable_fields_are_refused_wherever_they_appear(
            before in vec(0..ClientField::ALL.len(), 0..5),
            immutable in prop_oneof![
                Just("client_id"), Just("tenant"), Just("create_time"),
                Just("update_time"), Just("last_used_time"),
            ],
        ) {
            let mut paths: Vec<String> =
                before.iter().map(|&i| ClientField::ALL[i].path().to_owned()).collect();
            paths.push(immutable.to_owned());
            prop_assert!(ClientField::parse_mask(&paths).is_err());
        }

        #[test]
        fn arbitrary_mask_paths_never_panic_and_only_known_ones_parse(
            paths in vec(prop_oneof![any::<String>(), "(client\\.)?[a-z_*]{1,25}"], 0..6),
        ) {
            if ClientField::parse_mask(&paths).is_ok() {
                prop_assert!(!paths.is_empty());
                for path in &paths {
                    let path = path.strip_prefix("client.").unwrap_or(path);
                    prop_assert!(
                        path == "*" || ClientField::ALL.iter().any(|f| f.path() == path),
                        "{path:?} accepted"
                    );
                }
            }
        }
    }
}
