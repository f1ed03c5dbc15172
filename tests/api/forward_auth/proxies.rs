//! Real nginx and Caddy for the forward-auth tests, run from the repository's own example
//! configs (`examples/nginx/nginx.conf`, `examples/caddy/Caddyfile`) with the ports swapped for
//! the test's; a small upstream on 127.0.0.1 that echoes what it received; and a raw HTTP/1.1
//! client, so that paths reach the proxy exactly as written (`/orders/..;/admin`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Where a proxy binary is, or a loud skip (a failure where CI requires the proxies:
/// `TOKEND_TEST_REQUIRE_PROXIES=1`).
pub fn find(name: &str, candidates: &[&str]) -> Option<PathBuf> {
    let found = candidates.iter().map(PathBuf::from).find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("TOKEND_TEST_REQUIRE_PROXIES").is_none(),
            "{name} is required here (TOKEND_TEST_REQUIRE_PROXIES) but not installed: \
             apt-get install {name}"
        );
        eprintln!(
            "SKIPPED: {name} is not installed (apt-get install {name}); the forward-auth test \
             through it did not run"
        );
    }
    found
}

/// A free port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running proxy, killed when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
    log: PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    /// What the proxy logged, for a failing assertion.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn example(rel: &str, tokend: SocketAddr, upstream: SocketAddr, port: u16) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path)
        .unwrap()
        .replace("127.0.0.1:50051", &tokend.to_string())
        .replace("127.0.0.1:8080", &upstream.to_string())
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{port}"))
        .replace("http://:8000", &format!("http://:{port}"))
}

async fn wait_for(addr: SocketAddr, child: &mut Child, log: &Path) {
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the proxy exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the proxy did not listen on {addr}");
}

/// nginx from `examples/nginx/nginx.conf`, in the foreground, everything under a temp folder.
pub async fn nginx(bin: &Path, tokend: SocketAddr, upstream: SocketAddr) -> Proxy {
    start(
        "examples/nginx/nginx.conf",
        tokend,
        upstream,
        |conf, dir, log| {
            let globals = format!(
                "daemon off; master_process off; pid {}; error_log {} info;",
                dir.join("nginx.pid").display(),
                log.display()
            );
            let mut command = Command::new(bin);
            command
                .arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(conf)
                .args(["-g", &globals]);
            command.stderr(Stdio::null());
            command
        },
    )
    .await
}

/// Caddy from `examples/caddy/Caddyfile`, its state under a temp folder.
pub async fn caddy(bin: &Path, tokend: SocketAddr, upstream: SocketAddr) -> Proxy {
    start(
        "examples/caddy/Caddyfile",
        tokend,
        upstream,
        |conf, dir, log| {
            let mut command = Command::new(bin);
            command
                .args(["run", "--adapter", "caddyfile", "--config"])
                .arg(conf)
                .env("HOME", dir)
                .env("XDG_DATA_HOME", dir)
                .env("XDG_CONFIG_HOME", dir)
                .stderr(std::fs::File::create(log).unwrap());
            command
        },
    )
    .await
}

/// A proxy from the example config `rel` (ports swapped for the test's) in a temp folder, the
/// command built by `command(config file, folder, log file)`; back once it listens.
async fn start(
    rel: &str,
    tokend: SocketAddr,
    upstream: SocketAddr,
    command: impl FnOnce(&Path, &Path, &Path) -> Command,
) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join(Path::new(rel).file_name().unwrap());
    std::fs::write(&conf, example(rel, tokend, upstream, port)).unwrap();
    let log = dir.path().join("proxy.log");
    let mut child = command(&conf, dir.path(), &log)
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{rel}: the proxy does not start: {e}"));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_for(addr, &mut child, &log).await;
    Proxy {
        addr,
        child,
        _dir: dir,
        log,
    }
}

/// The upstream API: answers 200 with what it received as JSON (`path` and every header,
/// names in lower case), one request per connection.
pub async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut raw = Vec::new();
                let mut buf = [0u8; 4096];
                while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => raw.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&raw).into_owned();
                let mut lines = head.lines();
                let path = lines
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1))
                    .unwrap_or_default()
                    .to_owned();
                let headers: BTreeMap<String, String> = lines
                    .take_while(|l| !l.is_empty())
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let body = serde_json::json!({"upstream": true, "path": path, "headers": headers})
                    .to_string();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

/// One HTTP/1.1 answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Lower-case names; a repeated header's values joined with `, `.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Answer {
    /// A header's value; empty when absent.
    pub fn header(&self, name: &str) -> String {
        self.headers.get(name).cloned().unwrap_or_default()
    }

    /// What the upstream received, when the request reached it.
    pub fn upstream(&self) -> Option<serde_json::Value> {
        let body: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        (body["upstream"] == true).then_some(body)
    }
}

/// `method target` with `headers`, over a fresh connection, the target sent as written.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Answer {
    send_from("127.0.0.1", addr, method, target, headers).await
}

/// [`send`] from the local address `from` (e.g. a trusted proxy's `127.0.0.2`).
pub async fn send_from(
    from: &str,
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {raw:?}"));
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            headers
                .entry(name.trim().to_ascii_lowercase())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(value.trim());
                })
                .or_insert_with(|| value.trim().to_owned());
        }
    }
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}
