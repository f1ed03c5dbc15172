//! Registered clients: the entity (`client`), what is kept of its secrets (`stored`), its validated settings
//! with the input rules and field masks (`spec`), the admin
//! service that creates, changes, lists and deletes them and rotates their secrets (`admin`),
//! client secrets and their argon2id hashing (`secret`), and each replica's memory of secrets
//! it verified recently (`secret_cache`); how a client may authenticate (`auth_methods`) and
//! the public keys it proves itself with instead of a secret (`jwks`), or the workload
//! identities that may act as it (`federated`); client certificates and the subject a
//! `tls_client_auth` client is bound to (`certificate`).

mod admin;
pub(crate) mod auth_methods;
pub(crate) mod certificate;
pub(crate) mod client;
pub(crate) mod federated;
mod field_rules;
pub(crate) mod jwks;
pub(crate) mod secret;
pub(crate) mod secret_cache;
pub(crate) mod spec;
mod stored;
pub(crate) mod tls_subject;

pub use admin::{ClientAdmin, ClientPage};
pub use auth_methods::{AuthMethod, AuthMethods};
pub use certificate::{
    CertificateSource, ClientCa, ClientCertificate, DistinguishedName, SubjectBinding,
};
pub use client::Client;
pub use federated::FederatedCredential;
pub use jwks::{ASSERTION_ALGORITHMS, ClientJwks, ClientKey, KeyMaterial};
pub use secret::{ClientSecret, HashParams, SecretHasher};
pub use spec::{ClientField, ClientInput, ClientSpec, MAX_ACCESS_TTL, TokenFormat};
pub use stored::{LiveSecret, StoredSecret};
pub use tls_subject::TlsSubject;
