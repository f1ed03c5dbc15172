//! The secretless IssueToken phases: `issue-pkjwt` (a client's own ES256 assertions, each used
//! once, signed before the phase so the bench spends no CPU on them while it measures) and
//! `issue-federated` (a workload's RS256 token, as a Kubernetes service-account token is, from
//! an issuer the bench itself serves the keys of on `--federation-issuer`; reused for every
//! call, as a projected token is).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::domain::JWT_BEARER_ASSERTION;
use crate::proto::IssueTokenRequest;

/// The `sub` of the bench's workload token, and the `aud` the issuer must accept.
pub(crate) const WORKLOAD_SUBJECT: &str = "tokend-bench";
pub(crate) const WORKLOAD_AUDIENCE: &str = "tokend-bench";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.claims.` ready for a signature.
fn signing_input(alg: &str, kid: &str, claims: &Value) -> String {
    let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// A client's own P-256 key: its public JWK Set, and assertions signed with it.
pub(crate) struct ClientKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl ClientKey {
    pub fn generate() -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("generating a P-256 key failed"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|_| anyhow::anyhow!("reading the P-256 key failed"))?;
        Ok(Self { pair, rng })
    }

    pub fn jwks(&self) -> String {
        let point = self.pair.public_key().as_ref();
        json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "bench", "use": "sig",
            "x": b64(&point[1..33]), "y": b64(&point[33..])}]})
        .to_string()
    }

    /// IssueToken requests for `client_id`, each with an assertion of its own `jti`, for the
    /// audience `aud`, issued at `now` (the server's Unix time), valid for four minutes
    /// (within the default five-minute limit).
    pub fn requests(
        &self,
        client_id: &str,
        aud: &str,
        now: i64,
        n: usize,
    ) -> anyhow::Result<Vec<IssueTokenRequest>> {
        // Unique across runs, whatever the clocks say.
        let run = uuid::Uuid::new_v4().simple().to_string();
        (0..n)
            .map(|i| {
                let claims = json!({"iss": client_id, "sub": client_id, "aud": aud,
                    "iat": now, "exp": now + 240, "jti": format!("bench-{run}-{i}")});
                let input = signing_input("ES256", "bench", &claims);
                let signature = self
                    .pair
                    .sign(&self.rng, input.as_bytes())
                    .map_err(|_| anyhow::anyhow!("signing an assertion failed"))?;
                Ok(assertion_request(
                    client_id,
                    format!("{input}.{}", b64(signature.as_ref())),
                ))
            })
            .collect()
    }
}

/// An IssueToken request authenticated by `assertion` alone.
pub(crate) fn assertion_request(client_id: &str, assertion: String) -> IssueTokenRequest {
    IssueTokenRequest {
        client_id: client_id.to_owned(),
        client_assertion_type: JWT_BEARER_ASSERTION.to_owned(),
        client_assertion: assertion,
        ..Default::default()
    }
}

/// A workload-identity issuer of the bench's own: an RSA-2048 key (RS256, as Kubernetes signs
/// service-account tokens), its JWK Set served over plain HTTP on the issuer's loopback
/// address at `/jwks` for as long as the bench runs.
pub(crate) struct Issuer {
    pub issuer: String,
    pair: RsaKeyPair,
    /// Unique per run: a second run's new key under the same `kid` would not be looked up
    /// again while tokend's copy of the set is fresh (a rotation needs a new `kid`).
    kid: String,
}

impl Issuer {
    /// Generates the key and starts serving its set at `<issuer>/jwks` (`issuer` must be
    /// `http://127.0.0.1:<port>` or another loopback address tokend fetches from).
    pub async fn start(issuer: &str) -> anyhow::Result<Self> {
        let url = url::Url::parse(issuer).context("--federation-issuer is not a URL")?;
        let host = url.host_str().context("--federation-issuer has no host")?;
        let port = url.port_or_known_default().unwrap_or(80);
        let pair = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| anyhow::anyhow!("generating an RSA key failed"))?;
        let public = pair.public_key();
        let kid = format!("bench-rsa-{}", uuid::Uuid::new_v4().simple());
        let jwks: Arc<str> = Arc::from(
            json!({"keys": [{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                "n": b64(public.modulus().big_endian_without_leading_zero()),
                "e": b64(public.exponent().big_endian_without_leading_zero())}]})
            .to_string(),
        );
        let listener = tokio::net::TcpListener::bind((host.trim_matches(['[', ']']), port))
            .await
            .with_context(|| format!("serving the issuer's keys on {host}:{port}"))?;
        let served = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let jwks = jwks.clone();
                let served = served.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    served.fetch_add(1, Ordering::Relaxed);
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         cache-control: max-age=3600\r\ncontent-length: {}\r\n\
                         connection: close\r\n\r\n{jwks}",
                        jwks.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        Ok(Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            pair,
            kid,
        })
    }

    /// A workload token for [`WORKLOAD_SUBJECT`], an hour long, issued at `now` (the
    /// server's Unix time).
    pub fn token(&self, now: i64) -> anyhow::Result<String> {
        let claims = json!({"iss": self.issuer, "sub": WORKLOAD_SUBJECT,
            "aud": [WORKLOAD_AUDIENCE], "iat": now, "nbf": now, "exp": now + 3600,
            "jti": format!("bench-{now}")});
        let input = signing_input("RS256", &self.kid, &claims);
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| anyhow::anyhow!("signing the workload token failed"))?;
        Ok(format!("{input}.{}", b64(&signature)))
    }
}

/// IssueToken requests handed out once each (`issue-pkjwt`: an assertion works once).
pub(crate) struct RequestPool {
    requests: Vec<IssueTokenRequest>,
    next: AtomicUsize,
}

impl RequestPool {
    pub fn new(requests: Vec<IssueTokenRequest>) -> Self {
        Self {
            requests,
            next: AtomicUsize::new(0),
        }
    }

    /// The next unused request; `None` once all are used.
    pub fn take(&self) -> Option<IssueTokenRequest> {
        self.requests
            .get(self.next.fetch_add(1, Ordering::Relaxed))
            .cloned()
    }
}
