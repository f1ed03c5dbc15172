//! `tokend admin keys|audit|usage`: signing keys, the audit trail (listed or followed) and a
//! client's usage per day.

use std::collections::HashSet;
use std::time::Duration;

use clap::Subcommand;
use serde_json::{Value, json};

use super::clients::parse_duration;
use super::connect::Session;
use super::output::{AdminError, Output, json, table};
use crate::proto::audit_service_client::AuditServiceClient;
use crate::proto::key_service_client::KeyServiceClient;
use crate::proto::{
    AuditEvent, AuditEventKind, GetClientUsageRequest, ListAuditEventsRequest,
    ListSigningKeysRequest, RotateSigningKeyRequest, SigningKey, SigningKeyState,
};

/// `tokend admin keys`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// The signing keys and where each is in its life.
    ///
    /// Example: tokend admin keys list
    List,
    /// Start signing with a new key (published first for --prepublish, so verifiers that
    /// cache the JWKS see it before any token it signed).
    ///
    /// Example: tokend admin keys rotate --prepublish 10m
    Rotate {
        /// How long the new key is published before it signs (`0`: at once).
        #[arg(long, value_parser = parse_duration)]
        prepublish: Option<Duration>,
        /// Stop verifying the previous key's tokens at once (compromise); default: kept for
        /// its tokens' lifetime.
        #[arg(long)]
        retire_previous: bool,
    },
}

/// `tokend admin audit`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Audit events, newest first.
    ///
    /// Example: tokend admin audit list --client 0190a8e2-... --kind token_refused_bad_secret --since 1h
    List {
        #[command(flatten)]
        filter: AuditFilter,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Follow new audit events as they are recorded (refusals are written in batches, every
    /// few seconds), until Ctrl-C or --for.
    ///
    /// Example: tokend admin audit tail --kind token_refused_lockout
    Tail {
        #[command(flatten)]
        filter: AuditFilter,
        /// How often to ask for new events.
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        interval: Duration,
        /// Stop after this long (default: until Ctrl-C).
        #[arg(long = "for", value_parser = parse_duration)]
        duration: Option<Duration>,
    },
}

/// The filters of `audit list|tail`.
#[derive(Debug, clap::Args)]
pub struct AuditFilter {
    /// Only this client's events.
    #[arg(long = "client", value_name = "CLIENT_ID")]
    pub client: Option<String>,
    /// Only these kinds (repeatable), e.g. client_updated, token_refused_bad_secret.
    #[arg(long = "kind", value_parser = parse_kind)]
    pub kinds: Vec<AuditEventKind>,
    /// Only events of the last DURATION (`15m`, `24h`, `7d`).
    #[arg(long, value_parser = parse_duration)]
    pub since: Option<Duration>,
}

/// `client_updated` or `AUDIT_EVENT_KIND_CLIENT_UPDATED`.
fn parse_kind(raw: &str) -> Result<AuditEventKind, String> {
    let upper = raw.trim().to_ascii_uppercase();
    let name = if upper.starts_with("AUDIT_EVENT_KIND_") {
        upper
    } else {
        format!("AUDIT_EVENT_KIND_{upper}")
    };
    AuditEventKind::from_str_name(&name)
        .filter(|k| *k != AuditEventKind::Unspecified)
        .ok_or_else(|| format!("unknown kind {raw:?}, e.g. client_updated, token_refused_lockout"))
}

fn kind_name(kind: i32) -> String {
    AuditEventKind::try_from(kind)
        .map(|k| {
            k.as_str_name()
                .trim_start_matches("AUDIT_EVENT_KIND_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| kind.to_string())
}

fn rfc3339(t: &Option<prost_types::Timestamp>) -> Option<String> {
    t.as_ref()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.seconds).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
}

fn timestamp_ago(ago: Duration) -> prost_types::Timestamp {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(now.saturating_sub(ago).as_secs()).unwrap_or(0),
        nanos: 0,
    }
}

fn key_state(state: i32) -> String {
    SigningKeyState::try_from(state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("SIGNING_KEY_STATE_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| state.to_string())
}

fn key_json(k: &SigningKey) -> Value {
    json!({
        "kid": k.kid, "algorithm": k.algorithm, "state": key_state(k.state),
        "create_time": rfc3339(&k.create_time), "activate_time": rfc3339(&k.activate_time),
        "retire_time": rfc3339(&k.retire_time),
    })
}

fn keys_out(keys: &[SigningKey], output: Output) -> String {
    match output {
        Output::Json => json(&json!({"keys": keys.iter().map(key_json).collect::<Vec<_>>()})),
        Output::Table => {
            let rows: Vec<Vec<String>> = keys
                .iter()
                .map(|k| {
                    vec![
                        k.kid.clone(),
                        k.algorithm.clone(),
                        key_state(k.state),
                        rfc3339(&k.activate_time).unwrap_or_default(),
                        rfc3339(&k.retire_time).unwrap_or_default(),
                    ]
                })
                .collect();
            table(
                &["kid", "algorithm", "state", "activates", "retires"],
                &rows,
            )
        }
    }
}

/// Runs `keys ...`.
pub async fn keys(
    session: &Session,
    command: KeysCommand,
    output: Output,
) -> Result<String, AdminError> {
    let mut api = KeyServiceClient::new(session.channel.clone());
    match command {
        KeysCommand::List => {
            let keys = api
                .list_signing_keys(session.request(ListSigningKeysRequest {}))
                .await
                .map_err(|s| AdminError::status("listing the signing keys", &s))?
                .into_inner()
                .keys;
            Ok(keys_out(&keys, output))
        }
        KeysCommand::Rotate {
            prepublish,
            retire_previous,
        } => {
            let request = RotateSigningKeyRequest {
                prepublish: prepublish.map(|d| prost_types::Duration {
                    seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    nanos: 0,
                }),
                retire_previous,
            };
            let key = api
                .rotate_signing_key(session.request(request))
                .await
                .map_err(|s| AdminError::status("rotating the signing key", &s))?
                .into_inner()
                .key
                .ok_or_else(|| AdminError::other("rotate: the server answered no key"))?;
            Ok(keys_out(std::slice::from_ref(&key), output))
        }
    }
}

fn event_json(e: &AuditEvent) -> Value {
    json!({
        "event_id": e.event_id, "time": rfc3339(&e.time), "tenant": e.tenant,
        "client_id": e.client_id, "actor": e.actor, "source_address": e.source_address,
        "kind": kind_name(e.kind), "details": e.details, "count": e.count,
    })
}

fn event_rows(events: &[AuditEvent]) -> Vec<Vec<String>> {
    events
        .iter()
        .map(|e| {
            let mut details: Vec<String> =
                e.details.iter().map(|(k, v)| format!("{k}={v}")).collect();
            details.sort();
            vec![
                rfc3339(&e.time).unwrap_or_default(),
                kind_name(e.kind),
                e.tenant.clone(),
                e.client_id.clone(),
                e.actor.clone(),
                e.source_address.clone(),
                e.count.to_string(),
                details.join(" "),
            ]
        })
        .collect()
}

const EVENT_HEADERS: [&str; 8] = [
    "time",
    "kind",
    "tenant",
    "client_id",
    "actor",
    "address",
    "count",
    "details",
];

async fn list_events(
    session: &Session,
    filter: &AuditFilter,
    start: Option<prost_types::Timestamp>,
    limit: usize,
) -> Result<Vec<AuditEvent>, AdminError> {
    let mut api = AuditServiceClient::new(session.channel.clone());
    let mut events = Vec::new();
    let mut page_token = String::new();
    while events.len() < limit {
        let request = ListAuditEventsRequest {
            client_id: filter.client.clone().unwrap_or_default(),
            kinds: filter.kinds.iter().map(|k| *k as i32).collect(),
            start_time: start.or_else(|| filter.since.map(timestamp_ago)),
            end_time: None,
            page_size: i32::try_from((limit - events.len()).min(100)).unwrap_or(100),
            page_token: page_token.clone(),
        };
        let page = api
            .list_audit_events(session.request(request))
            .await
            .map_err(|s| AdminError::status("listing audit events", &s))?
            .into_inner();
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    events.truncate(limit);
    Ok(events)
}

/// Runs `audit ...`. `tail` prints as it goes and returns nothing more to print.
pub async fn audit(
    session: &Session,
    command: AuditCommand,
    output: Output,
) -> Result<String, AdminError> {
    match command {
        AuditCommand::List { filter, limit } => {
            let events = list_events(session, &filter, None, limit).await?;
            Ok(match output {
                Output::Json => {
                    json(&json!({"events": events.iter().map(event_json).collect::<Vec<_>>()}))
                }
                Output::Table => table(&EVENT_HEADERS, &event_rows(&events)),
            })
        }
        AuditCommand::Tail {
            filter,
            interval,
            duration,
        } => {
            let stop = duration.map(|d| tokio::time::Instant::now() + d);
            let mut seen = HashSet::new();
            let mut start = Some(timestamp_ago(filter.since.unwrap_or_default()));
            if output == Output::Table {
                print!("{}", table(&EVENT_HEADERS, &[]));
            }
            loop {
                session.renew_if_due().await?;
                let mut events = list_events(session, &filter, start, 1000).await?;
                events.reverse(); // oldest first, as a log reads
                for event in events.iter().filter(|e| seen.insert(e.event_id.clone())) {
                    match output {
                        Output::Json => println!("{}", event_json(event)),
                        Output::Table => {
                            println!("{}", event_rows(std::slice::from_ref(event))[0].join("  "))
                        }
                    }
                }
                // Aggregated refusals keep their minute's time: ask again from a minute back.
                start = Some(timestamp_ago(Duration::from_secs(60)));
                if stop.is_some_and(|stop| tokio::time::Instant::now() >= stop) {
                    return Ok(String::new());
                }
                tokio::time::sleep(interval).await;
            }
        }
    }
}

/// Runs `usage <client>`: a table of the days and a small chart of tokens issued.
pub async fn usage(
    session: &Session,
    id: String,
    days: i32,
    output: Output,
) -> Result<String, AdminError> {
    let usage = AuditServiceClient::new(session.channel.clone())
        .get_client_usage(session.request(GetClientUsageRequest {
            client_id: id,
            days,
        }))
        .await
        .map_err(|s| AdminError::status("getting the usage", &s))?
        .into_inner();
    if output == Output::Json {
        let days: Vec<Value> = usage
            .days
            .iter()
            .map(|d| {
                json!({"date": d.date, "tokens_issued": d.tokens_issued, "refreshes": d.refreshes,
                    "refused_address": d.refused_address, "refused_rate_limit": d.refused_rate_limit,
                    "refused_lockout": d.refused_lockout, "refused_bad_secret": d.refused_bad_secret,
                    "introspections_active": d.introspections_active,
                    "introspections_inactive": d.introspections_inactive,
                    "api_calls_allowed": d.api_calls_allowed,
                    "api_calls_throttled": d.api_calls_throttled,
                    "authentications": d.authentications})
            })
            .collect();
        return Ok(json(&json!({
            "client_id": usage.client_id, "days": days,
            "last_used_time": rfc3339(&usage.last_used_time),
            "last_used_address": usage.last_used_address,
        })));
    }
    let rows: Vec<Vec<String>> = usage
        .days
        .iter()
        .map(|d| {
            let refused =
                d.refused_address + d.refused_rate_limit + d.refused_lockout + d.refused_bad_secret;
            vec![
                d.date.clone(),
                d.tokens_issued.to_string(),
                d.refreshes.to_string(),
                refused.to_string(),
                d.introspections_active.to_string(),
                d.introspections_inactive.to_string(),
                d.api_calls_allowed.to_string(),
                d.api_calls_throttled.to_string(),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "date",
            "issued",
            "refreshes",
            "refused",
            "active",
            "inactive",
            "api",
            "throttled",
        ],
        &rows,
    );
    let most = usage
        .days
        .iter()
        .map(|d| d.tokens_issued)
        .max()
        .unwrap_or(0)
        .max(1);
    out.push_str("\ntokens issued per day\n");
    for d in usage.days.iter().rev() {
        let bar = (d.tokens_issued * 40).div_ceil(most) as usize;
        out.push_str(&format!(
            "{}  {:<40}  {}\n",
            d.date,
            "#".repeat(bar),
            d.tokens_issued
        ));
    }
    Ok(out)
}
