//! A key server on 127.0.0.1 for the tests of fetched keys: a client's `jwks_uri`, a federated
//! issuer's OpenID discovery document and JWK Set. Its set can be swapped (a key rotation) or
//! made to fail (an outage), and it counts what it served.

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

struct State {
    jwks: Mutex<String>,
    /// The `issuer` its discovery document names (its own base URL unless changed).
    issuer: Mutex<String>,
    status: AtomicU16,
    jwks_hits: AtomicUsize,
    discovery_hits: AtomicUsize,
    /// The `Authorization` header of the last request.
    last_authorization: Mutex<Option<String>>,
}

pub struct KeyServer {
    /// `http://127.0.0.1:<port>`: also the issuer it speaks for.
    pub base: String,
    state: Arc<State>,
}

impl KeyServer {
    /// Serves `jwks` at `/jwks` (cached for an hour) and a discovery document pointing there.
    pub async fn start(jwks: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State {
            jwks: Mutex::new(jwks.to_owned()),
            issuer: Mutex::new(base.clone()),
            status: AtomicU16::new(200),
            jwks_hits: AtomicUsize::new(0),
            discovery_hits: AtomicUsize::new(0),
            last_authorization: Mutex::new(None),
        });
        let serving = state.clone();
        let jwks_uri = format!("{base}/jwks");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let state = serving.clone();
                let jwks_uri = jwks_uri.clone();
                tokio::spawn(async move {
                    let mut request = vec![0u8; 8192];
                    let n = socket.read(&mut request).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&request[..n]).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let authorization = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("authorization: ")
                                .or(l.strip_prefix("Authorization: "))
                        })
                        .map(str::to_owned);
                    *state.last_authorization.lock().unwrap() = authorization;
                    let status = state.status.load(Ordering::SeqCst);
                    let body = match path.as_str() {
                        "/jwks" => {
                            state.jwks_hits.fetch_add(1, Ordering::SeqCst);
                            state.jwks.lock().unwrap().clone()
                        }
                        "/.well-known/openid-configuration" => {
                            state.discovery_hits.fetch_add(1, Ordering::SeqCst);
                            let issuer = state.issuer.lock().unwrap().clone();
                            serde_json::json!({"issuer": issuer, "jwks_uri": jwks_uri}).to_string()
                        }
                        _ => String::new(),
                    };
                    let status = if body.is_empty() { 404 } else { status };
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                         cache-control: max-age=3600\r\ncontent-length: {}\r\n\
                         connection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        Self { base, state }
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.base)
    }

    /// Serves another set from now on (a key rotation).
    pub fn rotate(&self, jwks: &str) {
        *self.state.jwks.lock().unwrap() = jwks.to_owned();
    }

    /// Answers every request with `status` from now on (503: an outage; 200: back).
    pub fn answer(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    /// Makes its discovery document name another issuer.
    pub fn claim_issuer(&self, issuer: &str) {
        *self.state.issuer.lock().unwrap() = issuer.to_owned();
    }

    pub fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    pub fn discovery_hits(&self) -> usize {
        self.state.discovery_hits.load(Ordering::SeqCst)
    }

    pub fn last_authorization(&self) -> Option<String> {
        self.state.last_authorization.lock().unwrap().clone()
    }
}
