//! Client administration: the rules behind `ClientService`, shared by the CLI. Every call takes
//! the `Caller` and enforces the admin scope and the tenant boundary itself.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::client::Client;
use super::secret::{ClientSecret, SecretHasher};
use super::spec::{ClientField, ClientInput, ClientSpec};
use super::stored::StoredSecret;
use crate::domain::audit::{self, AuditEvent, AuditKind};
use crate::domain::clock::{Clock, from_micros, to_micros};
use crate::domain::error::{Error, Result};
use crate::domain::federation::Federation;
use crate::domain::ids::{ClientId, TenantId};
use crate::domain::introspection::caller::Caller;
use crate::domain::introspection::registry::Registry;
use crate::domain::page_token;
use crate::domain::scope::ADMIN_SCOPE;
use crate::store::{Store, StoreError};

/// Default and largest page of `ListClients`.
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;
/// Longest grace period for a rotated secret.
pub const MAX_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);
const UPDATE_ATTEMPTS: usize = 3;

/// A page of clients and the token for the next one (empty on the last page).
#[derive(Debug)]
pub struct ClientPage {
    pub clients: Vec<Client>,
    pub next_page_token: String,
}

/// Registers and manages clients.
pub struct ClientAdmin {
    pub(in crate::domain) store: Arc<dyn Store>,
    pub(in crate::domain) hasher: SecretHasher,
    pub(in crate::domain) clock: Arc<dyn Clock>,
    pub(in crate::domain) registry: Arc<Registry>,
    /// The issuers a client's federated credentials may name, per tenant.
    pub(in crate::domain) federation: Arc<Federation>,
}

impl ClientAdmin {
    /// Registers a client and returns it with its secret (the only time the secret exists in
    /// the clear), or with none when none of its auth methods uses one (a client that proves
    /// itself with its own key has nothing to leak). The tenant defaults to the caller's; the
    /// operator, whose `system` is a pseudo-tenant rather than a choice, must name one (an
    /// unset shell variable must not make a `system` admin).
    #[tracing::instrument(skip_all, fields(caller = %caller.client_id))]
    pub async fn create(
        &self,
        caller: &Caller,
        input: &ClientInput,
    ) -> Result<(Client, Option<ClientSecret>)> {
        caller.require_scope(ADMIN_SCOPE)?;
        let tenant = if input.tenant.is_empty() && caller.is_operator() {
            return Err(Error::invalid(
                "client.tenant",
                "is required at the command line (`system` for tokend's own admins)",
            ));
        } else if input.tenant.is_empty() {
            caller.tenant.clone()
        } else {
            TenantId::parse("client.tenant", &input.tenant)?
        };
        if !caller.sees_tenant(&tenant) {
            return Err(Error::PermissionDenied(format!(
                "admins of tenant {} cannot create clients in tenant {tenant}",
                caller.tenant
            )));
        }
        let spec = ClientSpec::from_input(input)?;
        self.federation.check_credentials(
            "client.federated_credentials",
            tenant.as_str(),
            &spec.federated_credentials,
        )?;
        let now = self.stamp();
        let client = Client {
            id: ClientId::generate(),
            tenant,
            spec,
            create_time: now,
            update_time: now,
            last_used_time: None,
            revision: 1,
            token_generation: 0,
        };
        let (secret, stored) = if client.spec.auth_methods.uses_secret() {
            let secret = ClientSecret::generate()?;
            let stored = self.stored_secret(&client.id, &secret, now).await?;
            (Some(secret), Some(stored))
        } else {
            (None, None)
        };
        let kind = if caller.is_operator() {
            AuditKind::ClientBootstrapped
        } else {
            AuditKind::ClientCreated
        };
        let events = [event(kind, caller, &client, now)
            .with("name", client.spec.name.clone())
            .with("scopes", client.spec.scopes.to_claim())];
        self.store
            .insert_client(&client, stored.as_ref(), &events)
            .await?;
        audit::log_all(&events);
        self.registry.catch_up_after_write().await;
        tracing::info!(client_id = %client.id, tenant = %client.tenant, "client created");
        Ok((client, secret))
    }

    /// One client the caller may see.
    pub async fn get(&self, caller: &Caller, client_id: &str) -> Result<Client> {
        caller.require_scope(ADMIN_SCOPE)?;
        let id = ClientId::parse("client_id", client_id)?;
        self.load_visible(caller, &id).await
    }

    /// A page of clients in creation order. An empty `tenant` means the caller's own tenant,
    /// or every tenant for `system` admins.
    pub async fn list(
        &self,
        caller: &Caller,
        tenant: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<ClientPage> {
        caller.require_scope(ADMIN_SCOPE)?;
        let filter = match tenant {
            "" if caller.tenant.is_system() => None,
            "" => Some(caller.tenant.clone()),
            t => Some(TenantId::parse("tenant", t)?),
        };
        if let Some(t) = &filter
            && !caller.sees_tenant(t)
        {
            return Err(Error::PermissionDenied(format!(
                "admins of tenant {} can only list tenant {}",
                caller.tenant, caller.tenant
            )));
        }
        let limit = match page_size {
            0 => DEFAULT_PAGE,
            n if n < 0 => return Err(Error::invalid("page_size", "must not be negative")),
            n => u32::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE),
        };
        let filter_text = filter.as_ref().map_or("", TenantId::as_str);
        let after = PageToken::decode(page_token, filter_text)?;
        let mut clients = self
            .store
            .list_clients(
                filter.as_ref().map(TenantId::as_str),
                after.as_deref(),
                limit + 1,
            )
            .await?;
        let more = clients.len() > limit as usize;
        clients.truncate(limit as usize);
        let next_page_token = match clients.last() {
            Some(last) if more => PageToken::encode(filter_text, last.id.as_str()),
            _ => String::new(),
        };
        Ok(ClientPage {
            clients,
            next_page_token,
        })
    }

    /// Changes the fields named by `mask` to their values in `input`. Retries a few times when
    /// a concurrent update wins, then answers Aborted.
    #[tracing::instrument(skip_all, fields(caller = %caller.client_id, client_id))]
    pub async fn update(
        &self,
        caller: &Caller,
        client_id: &str,
        input: &ClientInput,
        mask: &[String],
    ) -> Result<Client> {
        caller.require_scope(ADMIN_SCOPE)?;
        let id = ClientId::parse("client.client_id", client_id)?;
        tracing::Span::current().record("client_id", id.as_str());
        let fields = ClientField::parse_mask(mask)?;
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self.load_visible(caller, &id).await?;
            let mut next = current.clone();
            next.spec.apply(input, &fields)?;
            if fields.contains(&ClientField::FederatedCredentials) {
                self.federation.check_credentials(
                    "client.federated_credentials",
                    next.tenant.as_str(),
                    &next.spec.federated_credentials,
                )?;
            }
            next.update_time = self.stamp();
            next.revision += 1;
            // Disabling revokes every token the client holds; re-enabling does not bring
            // them back.
            let disabling = current.spec.active && !next.spec.active;
            if disabling {
                next.token_generation += 1;
            }
            let paths: Vec<&str> = fields.iter().map(|f| f.path()).collect();
            let mut events = vec![
                event(AuditKind::ClientUpdated, caller, &next, next.update_time)
                    .with("fields", paths.join(",")),
            ];
            if disabling {
                events.push(event(
                    AuditKind::ClientDisabled,
                    caller,
                    &next,
                    next.update_time,
                ));
            }
            match self
                .store
                .update_client(&next, current.revision, disabling, &events)
                .await
            {
                Ok(()) => {
                    audit::log_all(&events);
                    self.registry.catch_up_after_write().await;
                    if disabling {
                        tracing::info!(client_id = %id, "client disabled; its tokens are revoked");
                    }
                    return Ok(next);
                }
                Err(StoreError::Conflict) => continue,
                Err(StoreError::NotFound) => return Err(not_found(&id)),
                Err(err) => return Err(err.into()),
            }
        }
        Err(Error::Aborted(
            "the client is being changed concurrently; retry".into(),
        ))
    }

    /// Issues a new secret; the previous ones keep working for `grace` (none: revoked now).
    /// Returns the new secret and when the previous ones stop working.
    #[tracing::instrument(skip_all, fields(caller = %caller.client_id, client_id))]
    pub async fn rotate_secret(
        &self,
        caller: &Caller,
        client_id: &str,
        grace: Duration,
    ) -> Result<(ClientSecret, OffsetDateTime)> {
        caller.require_scope(ADMIN_SCOPE)?;
        let id = ClientId::parse("client_id", client_id)?;
        tracing::Span::current().record("client_id", id.as_str());
        if grace > MAX_GRACE {
            return Err(Error::invalid(
                "grace_period",
                format!("must be at most {}s", MAX_GRACE.as_secs()),
            ));
        }
        let client = self.load_visible(caller, &id).await?;
        if !client.spec.auth_methods.uses_secret() {
            return Err(Error::FailedPrecondition(format!(
                "client {id} authenticates without a secret (auth_methods: {}); add \
                 client_secret_basic or client_secret_post to its auth_methods first",
                client.spec.auth_methods.names().join(", ")
            )));
        }
        let now = self.stamp();
        let secret = ClientSecret::generate()?;
        let stored = self.stored_secret(&id, &secret, now).await?;
        let expire = now + grace;
        let events = [event(AuditKind::SecretRotated, caller, &client, now)
            .with("grace_period_secs", grace.as_secs().to_string())];
        match self
            .store
            .rotate_secret(&stored, to_micros(expire), &events)
            .await
        {
            Err(StoreError::NotFound) => return Err(not_found(&id)),
            other => other?,
        }
        audit::log_all(&events);
        // This replica forgets the secrets it verified at once; the others on the change log.
        self.registry.catch_up_after_write().await;
        tracing::info!(client_id = %id, grace_secs = grace.as_secs(), "client secret rotated");
        Ok((secret, expire))
    }

    /// Deletes a client; its tokens stop introspecting active at once.
    #[tracing::instrument(skip_all, fields(caller = %caller.client_id, client_id))]
    pub async fn delete(&self, caller: &Caller, client_id: &str) -> Result<()> {
        caller.require_scope(ADMIN_SCOPE)?;
        let id = ClientId::parse("client_id", client_id)?;
        tracing::Span::current().record("client_id", id.as_str());
        let client = self.load_visible(caller, &id).await?;
        let now = self.stamp();
        let events = [event(AuditKind::ClientDeleted, caller, &client, now)
            .with("name", client.spec.name.clone())];
        if !self
            .store
            .delete_client(id.as_str(), to_micros(now), &events)
            .await?
        {
            return Err(not_found(&id));
        }
        audit::log_all(&events);
        self.registry.catch_up_after_write().await;
        tracing::info!(client_id = %id, "client deleted");
        Ok(())
    }

    /// Revokes every token the client holds now (access tokens of either format, refresh
    /// families). Tokens issued afterwards work. Returns the client as it is after.
    #[tracing::instrument(skip_all, fields(caller = %caller.client_id, client_id))]
    pub async fn revoke_tokens(&self, caller: &Caller, client_id: &str) -> Result<Client> {
        caller.require_scope(ADMIN_SCOPE)?;
        let id = ClientId::parse("client_id", client_id)?;
        tracing::Span::current().record("client_id", id.as_str());
        let client = self.load_visible(caller, &id).await?;
        let now = self.stamp();
        let events = [event(AuditKind::ClientTokensRevoked, caller, &client, now)];
        if !self
            .store
            .revoke_client_tokens(id.as_str(), to_micros(now), &events)
            .await?
        {
            return Err(not_found(&id));
        }
        audit::log_all(&events);
        self.registry.catch_up_after_write().await;
        tracing::info!(client_id = %id, "all tokens of the client revoked");
        self.load_visible(caller, &id).await
    }

    /// Now, at the store's precision (microseconds), so what a call returns equals what a
    /// later read returns.
    fn stamp(&self) -> OffsetDateTime {
        from_micros(to_micros(self.clock.now()))
    }

    /// Loads a client, answering NotFound for clients of tenants the caller may not see.
    async fn load_visible(&self, caller: &Caller, id: &ClientId) -> Result<Client> {
        let client = self
            .store
            .get_client(id.as_str())
            .await?
            .ok_or_else(|| not_found(id))?;
        if caller.sees_tenant(&client.tenant) {
            Ok(client)
        } else {
            Err(not_found(id))
        }
    }

    async fn stored_secret(
        &self,
        id: &ClientId,
        secret: &ClientSecret,
        now: OffsetDateTime,
    ) -> Result<StoredSecret> {
        Ok(StoredSecret {
            secret_id: uuid::Uuid::now_v7().to_string(),
            client_id: id.to_string(),
            selector: secret.selector(),
            hash: self.hasher.hash(secret).await?,
            create_time_us: to_micros(now),
            expire_time_us: None,
        })
    }
}

/// An admin event about `client`.
fn event(kind: AuditKind, caller: &Caller, client: &Client, now: OffsetDateTime) -> AuditEvent {
    AuditEvent::by_caller(
        kind,
        caller,
        client.tenant.as_str(),
        client.id.as_str(),
        now,
    )
}

fn not_found(id: &ClientId) -> Error {
    Error::NotFound(format!("client {id} not found"))
}

/// The opaque `page_token`: the last id of the previous page, bound to the tenant filter it was
/// issued for.
struct PageToken;

impl PageToken {
    fn encode(filter: &str, last_id: &str) -> String {
        page_token::encode(filter, last_id)
    }

    fn decode(token: &str, filter: &str) -> Result<Option<String>> {
        let Some(last) = page_token::decode(token, filter)? else {
            return Ok(None);
        };
        ClientId::parse("page_token", &last).map_err(|_| page_token::malformed())?;
        Ok(Some(last))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    #[test]
    fn page_token_round_trip_and_binding() {
        let id = ClientId::generate();
        let token = PageToken::encode("acme", id.as_str());
        assert_eq!(
            PageToken::decode(&token, "acme").unwrap().as_deref(),
            Some(id.as_str())
        );
        assert!(PageToken::decode(&token, "other").is_err());
        assert!(PageToken::decode("!!!", "acme").is_err());
        assert!(PageToken::decode(&URL_SAFE_NO_PAD.encode("v1\nacme\nnope"), "acme").is_err());
        assert_eq!(PageToken::decode("", "acme").unwrap(), None);
    }
}

#[cfg(test)]
mod properties {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use proptest::prelude::*;

    use super::*;

    fn filter() -> impl Strategy<Value = String> {
        "|[a-z0-9._-]{1,64}"
    }

    proptest! {
        #[test]
        fn page_tokens_round_trip(filter in filter(), bytes in any::<[u8; 16]>()) {
            let id = uuid::Uuid::from_bytes(bytes).hyphenated().to_string();
            let token = PageToken::encode(&filter, &id);
            prop_assert_eq!(PageToken::decode(&token, &filter).unwrap(), Some(id));
        }

        #[test]
        fn a_page_token_is_bound_to_its_filter(
            filter in filter(),
            other in filter(),
            bytes in any::<[u8; 16]>(),
        ) {
            prop_assume!(filter != other);
            let id = uuid::Uuid::from_bytes(bytes).hyphenated().to_string();
            prop_assert!(PageToken::decode(&PageToken::encode(&filter, &id), &other).is_err());
        }

        #[test]
        fn arbitrary_page_tokens_never_panic_and_yield_only_client_ids(
            token in any::<String>(),
            filter in filter(),
        ) {
            if let Ok(Some(last)) = PageToken::decode(&token, &filter) {
                prop_assert!(ClientId::parse("page_token", &last).is_ok());
            }
        }

        #[test]
        fn arbitrary_decoded_bytes_never_panic_and_yield_only_client_ids(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            head in prop_oneof![Just(Vec::new()), Just(b"v1\n\n".to_vec())],
        ) {
            let token = URL_SAFE_NO_PAD.encode([head, bytes].concat());
            if let Ok(Some(last)) = PageToken::decode(&token, "") {
                prop_assert!(ClientId::parse("page_token", &last).is_ok());
            }
        }
    }
}
