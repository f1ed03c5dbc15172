//! The rules of a client's individual fields, as `spec` applies them: text, token lists,
//! lifetimes, allow-lists (CIDRs, or bare addresses for one host) and metadata.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::domain::error::{Error, Result};

pub(super) const MAX_LIST: usize = 100;
const MAX_ITEM: usize = 256;
const MAX_METADATA: usize = 64;
const MAX_METADATA_KEY: usize = 63;
const MAX_METADATA_VALUE: usize = 1024;

pub(super) fn text(field: &str, raw: &str, min: usize, max: usize) -> Result<String> {
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
pub(super) fn tokens(field: &str, raw: &[String]) -> Result<BTreeSet<String>> {
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

pub(super) fn ttl_in(field: &str, ttl: Duration, min: Duration, max: Duration) -> Result<Duration> {
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

pub(super) fn cidrs(field: &str, raw: &[String]) -> Result<Vec<IpNet>> {
    if raw.len() > MAX_LIST {
        return Err(Error::invalid(field, format!("at most {MAX_LIST} entries")));
    }
    let mut nets = raw
        .iter()
        .enumerate()
        .map(|(i, s)| {
            net(s).ok_or_else(|| {
                Error::invalid(
                    format!("{field}[{i}]"),
                    format!(
                        "{s:?} is not a CIDR range such as 10.0.0.0/8 or 2001:db8::/32, \
                         nor an address such as 10.0.1.5"
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    nets.sort();
    nets.dedup();
    Ok(nets)
}

/// One allow-list entry: a CIDR range (host bits cleared) or a bare address, which means that one
/// address (`10.0.1.5` is `10.0.1.5/32`, `::1` is `::1/128`), as the systems tokend replaces read it.
pub(super) fn net(raw: &str) -> Option<IpNet> {
    raw.parse::<IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
        .ok()
}

pub(super) fn metadata(
    field: &str,
    raw: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
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
