//! What `tokend admin apply` will do: each entry matched to a registered client (by id, or by
//! tenant and name), compared field by field in the server's normal form (so `10.0.1.5` and
//! `10.0.1.5/32`, or scopes in another order, are no change), and the clients apply created
//! that the files no longer name, for `--prune`.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::super::clients::client_json;
use super::super::output::AdminError;
use super::file::{Entry, Lifetime, lifetime};
use crate::domain::ClientSpec;
use crate::proto::Client;

/// The metadata entry marking a client apply created: only those are pruned. Adding it by hand
/// hands a client over to apply's pruning.
pub const MANAGED_KEY: &str = "tokend.managed-by";
pub const MANAGED_VALUE: &str = "apply";

/// One field's value as the plan shows it.
pub type Field = (String, Value);

/// A change apply will make.
#[derive(Debug)]
pub enum Change {
    /// A client to register: `client` as sent; `fields` those not at a new client's default.
    Create {
        entry: Entry,
        client: Client,
        fields: Vec<Field>,
    },
    /// A client to change: `client` as sent, `diffs` (field, now, then) the update mask.
    Update {
        entry: Entry,
        client_id: String,
        client: Client,
        diffs: Vec<(String, Value, Value)>,
    },
    /// A client apply created that no file names any more (`--prune`).
    Delete { client: Client },
}

/// Everything apply will do, and the entries already as declared.
#[derive(Debug, Default)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub unchanged: Vec<(Entry, String)>,
}

impl Plan {
    /// How many of each: created, updated, deleted, unchanged.
    pub fn counts(&self) -> [usize; 4] {
        let mut counts = [0, 0, 0, self.unchanged.len()];
        for change in &self.changes {
            match change {
                Change::Create { .. } => counts[0] += 1,
                Change::Update { .. } => counts[1] += 1,
                Change::Delete { .. } => counts[2] += 1,
            }
        }
        counts
    }
}

/// `c` in the server's normal form (what GetClient would show once it is stored).
pub fn normalize(c: &Client) -> Result<Client, String> {
    let input = crate::grpc::client_input(c.clone()).map_err(|s| s.message().to_owned())?;
    let spec = ClientSpec::from_input(&input).map_err(|e| e.to_string())?;
    Ok(crate::grpc::client_fields(&spec))
}

/// The settable fields of `c` by API name, as `--output json` shows them (`active` apart).
pub fn fields(c: &Client) -> BTreeMap<String, Value> {
    let Value::Object(map) = client_json(c) else {
        return BTreeMap::new();
    };
    map.into_iter()
        .filter(|(key, _)| {
            !matches!(
                key.as_str(),
                "client_id"
                    | "tenant"
                    | "active"
                    | "create_time"
                    | "update_time"
                    | "last_used_time"
            )
        })
        .map(|(key, value)| {
            match key.strip_suffix("_secs") {
                // Lifetimes as a file writes them: `15m`, `7d`.
                Some(ttl) => {
                    let secs = value.as_i64().unwrap_or_default();
                    let shown = match lifetime(secs) {
                        Lifetime::Text(text) => Value::String(text),
                        Lifetime::Seconds(secs) => Value::from(secs),
                    };
                    (ttl.to_owned(), shown)
                }
                None => (key, value),
            }
        })
        .collect()
}

fn managed(c: &Client) -> bool {
    c.metadata.get(MANAGED_KEY).map(String::as_str) == Some(MANAGED_VALUE)
}

/// The client `entry` declares, marked as apply's when `mark`, in normal form.
fn desired(entry: &Entry, mark: bool) -> Result<Client, AdminError> {
    let mut client = entry.client.clone();
    if mark {
        client
            .metadata
            .insert(MANAGED_KEY.to_owned(), MANAGED_VALUE.to_owned());
    }
    let mut client = normalize(&client).map_err(|e| {
        AdminError::usage(format!(
            "{}: {}",
            entry.place,
            e.trim_start_matches("client.")
        ))
    })?;
    client.active = entry.client.active.or(Some(true));
    Ok(client)
}

/// Plans `entries` against the registered clients `current` (every page, as the admin sees
/// them); with `prune`, apply's own clients that no entry names are deleted.
pub fn plan(entries: Vec<Entry>, current: &[Client], prune: bool) -> Result<Plan, AdminError> {
    let defaults = fields(
        &normalize(&Client {
            name: "-".into(),
            ..Client::default()
        })
        .map_err(AdminError::other)?,
    );
    let mut plan = Plan::default();
    let mut named: HashSet<&str> = HashSet::new();
    for entry in entries {
        let Some(found) = find(&entry, current)? else {
            let client = desired(&entry, true)?;
            let fields = fields(&client)
                .into_iter()
                .filter(|(key, value)| key != "name" && defaults.get(key) != Some(value))
                .collect();
            plan.changes.push(Change::Create {
                entry,
                client,
                fields,
            });
            continue;
        };
        named.insert(&found.client_id);
        let mut client = desired(&entry, managed(found))?;
        let now = normalize(found).map(|c| fields(&c)).unwrap_or_default();
        let mut diffs: Vec<(String, Value, Value)> = fields(&client)
            .into_iter()
            .filter_map(|(key, value)| {
                let old = now.get(&key).cloned().unwrap_or(Value::Null);
                (old != value).then_some((key, old, value))
            })
            .collect();
        let active_now = found.active.unwrap_or(true);
        if entry.manages_active && client.active != Some(active_now) {
            diffs.push((
                "active".into(),
                Value::Bool(active_now),
                Value::Bool(!active_now),
            ));
        }
        if diffs.is_empty() {
            plan.unchanged.push((entry, found.client_id.clone()));
        } else {
            client.client_id = found.client_id.clone();
            plan.changes.push(Change::Update {
                entry,
                client_id: found.client_id.clone(),
                client,
                diffs,
            });
        }
    }
    if prune {
        for c in current {
            if managed(c) && !named.contains(c.client_id.as_str()) {
                plan.changes.push(Change::Delete { client: c.clone() });
            }
        }
    }
    Ok(plan)
}

/// The registered client `entry` names: by id (which must exist, in the entry's tenant), or by
/// tenant and name (at most one may match).
fn find<'a>(entry: &Entry, current: &'a [Client]) -> Result<Option<&'a Client>, AdminError> {
    if let Some(id) = &entry.client_id {
        let found = current.iter().find(|c| &c.client_id == id).ok_or_else(|| {
            AdminError::usage(format!(
                "{}: client_id: {id} is not a registered client (that the admin can see); \
                 leave client_id out to create the client",
                entry.place
            ))
        })?;
        if found.tenant != entry.tenant {
            return Err(AdminError::usage(format!(
                "{}: tenant: client {id} is in tenant {:?}; a client cannot move between tenants",
                entry.place, found.tenant
            )));
        }
        return Ok(Some(found));
    }
    let mut matches = current
        .iter()
        .filter(|c| c.tenant == entry.tenant && c.name == entry.name);
    let first = matches.next();
    if let Some(second) = matches.next() {
        return Err(AdminError::usage(format!(
            "{}: name: {} clients of tenant {:?} are named {:?} ({}, {}, ...); give the \
             entry's client_id to say which",
            entry.place,
            2 + matches.count(),
            entry.tenant,
            entry.name,
            first.map(|c| c.client_id.as_str()).unwrap_or_default(),
            second.client_id
        )));
    }
    Ok(first)
}

/// The plan as a diff: `+` created, `~` changed (`-` old and `+` new values), `-` deleted.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let value = |v: &Value| v.to_string();
    for change in &plan.changes {
        match change {
            Change::Create { entry, fields, .. } => {
                out.push_str(&format!("+ {}/{} (new)\n", entry.tenant, entry.name));
                for (key, v) in fields {
                    out.push_str(&format!("+     {key}: {}\n", value(v)));
                }
            }
            Change::Update {
                entry,
                client_id,
                diffs,
                ..
            } => {
                out.push_str(&format!(
                    "~ {}/{} ({client_id})\n",
                    entry.tenant, entry.name
                ));
                for (key, old, new) in diffs {
                    out.push_str(&format!("-     {key}: {}\n", value(old)));
                    out.push_str(&format!("+     {key}: {}\n", value(new)));
                }
            }
            Change::Delete { client } => {
                out.push_str(&format!(
                    "- {}/{} ({}) (no file names it: --prune)\n",
                    client.tenant, client.name, client.client_id
                ));
            }
        }
    }
    let [create, update, delete, same] = plan.counts();
    out.push_str(&format!(
        "plan: {create} to create, {update} to update, {delete} to delete, {same} unchanged\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(yaml: &str) -> Entry {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, yaml).unwrap();
        super::super::file::read(&[path]).unwrap().remove(0)
    }

    /// A registered client as the server shows it: normal form, an id, apply's mark.
    fn registered(yaml: &str, id: &str) -> Client {
        let e = entry(yaml);
        let mut c = desired(&e, true).unwrap();
        c.client_id = id.into();
        c.tenant = e.tenant;
        c
    }

    #[test]
    fn the_same_client_written_differently_is_no_change() {
        let now = registered(
            "clients: [{tenant: t, name: a, scopes: [b, a], allowed_cidrs: [10.0.0.1/32], \
             access_token_ttl: 900}]",
            "id-a",
        );
        let same = entry(
            "clients: [{tenant: t, name: a, scopes: [a, b], allowed_cidrs: [10.0.0.1], \
             access_token_ttl: 15m}]",
        );
        let plan = plan(vec![same], &[now], true).unwrap();
        assert!(plan.changes.is_empty(), "{}", render(&plan));
        assert_eq!(plan.counts(), [0, 0, 0, 1]);
    }

    #[test]
    fn a_changed_field_is_the_whole_mask_and_prune_spares_hand_made_clients() {
        let mine = registered(
            "clients: [{tenant: t, name: a, rate_limit_per_minute: 5}]",
            "1",
        );
        let gone = registered("clients: [{tenant: t, name: gone}]", "2");
        let mut by_hand = registered("clients: [{tenant: t, name: manual}]", "3");
        by_hand.metadata.clear();
        let changed = entry("clients: [{tenant: t, name: a, rate_limit_per_minute: 6}]");
        let plan = plan(vec![changed], &[mine, gone, by_hand], true).unwrap();
        let text = render(&plan);
        assert!(
            text.contains("-     rate_limit_per_minute: 5\n+     rate_limit_per_minute: 6"),
            "{text}"
        );
        match &plan.changes[..] {
            [Change::Update { diffs, .. }, Change::Delete { client }] => {
                assert_eq!(diffs.len(), 1);
                assert_eq!(client.name, "gone");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn two_clients_of_one_name_need_an_id() {
        let a = registered("clients: [{tenant: t, name: twin}]", "1");
        let b = registered("clients: [{tenant: t, name: twin}]", "2");
        let err = plan(
            vec![entry("clients: [{tenant: t, name: twin}]")],
            &[a, b],
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("client_id"), "{err}");
    }
}
