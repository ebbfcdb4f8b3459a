//! Real registries for tests: Debian's `docker-registry` (distribution 2.x) on a free
//! loopback port, open or behind htpasswd basic auth, and a small in-test Bearer token
//! server in front of one (a reverse proxy that demands tokens it issued, for the scope the
//! request needs, and forwards everything else to the registry).
//!
//! Shared by the worker's and the CLI's integration tests (`#[path]`), self-contained.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BINARY: &str = "/usr/bin/docker-registry";

/// Whether the registry binary is here. In CI it must be: a skip there would hide a
/// missing install behind a green run.
pub fn available() -> bool {
    let ok = Path::new(BINARY).exists() && Path::new("/usr/bin/skopeo").exists();
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "CI must have docker-registry and skopeo installed"
    );
    if !ok {
        eprintln!("skipped: needs docker-registry and skopeo");
    }
    ok
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A running `docker-registry`, stopped and deleted when dropped.
#[derive(Debug)]
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    dir: PathBuf,
    child: Child,
}

impl Registry {
    /// An open registry.
    pub fn open() -> Registry {
        Registry::start(None)
    }

    /// A registry that demands `user`/`pass` (htpasswd, bcrypt).
    pub fn basic(user: &str, pass: &str) -> Registry {
        Registry::start(Some((user, pass)))
    }

    fn start(auth: Option<(&str, &str)>) -> Registry {
        let dir = std::env::temp_dir().join(format!(
            "strata-registry-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n",
            dir.join("data").display()
        );
        if let Some((user, pass)) = auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("run htpasswd (apache2-utils)");
            assert!(out.status.success(), "htpasswd failed");
            std::fs::write(dir.join("htpasswd"), &out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                dir.join("htpasswd").display()
            ));
        }
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let child = Command::new(BINARY)
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("registry.log")).unwrap())
            .spawn()
            .expect("start docker-registry");
        let registry = Registry { addr, dir, child };
        registry.wait_ready();
        registry
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect(&self.addr) {
                let _ = stream.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut reply = String::new();
                let _ = stream.read_to_string(&mut reply);
                if reply.starts_with("HTTP/") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "docker-registry did not start on {}: {}",
            self.addr,
            std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
        );
    }

    /// The registry's storage root (`docker/registry/v2/…` below it).
    pub fn storage(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The data file of blob `digest` (`sha256:…`) in the storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes a Docker config (`DIR/config.json`) with `user`/`pass` for `registry`; returns
/// its path.
pub fn docker_config(dir: &Path, registry: &str, user: &str, pass: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let auth = base64(format!("{user}:{pass}").as_bytes());
    let path = dir.join("config.json");
    std::fs::write(
        &path,
        format!(r#"{{"auths":{{"{registry}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    path
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() {
                T[(n >> (18 - 6 * i)) as usize & 63] as char
            } else {
                '='
            });
        }
    }
    out
}

/// A Bearer token server and reverse proxy in front of a registry (see the module docs).
/// `/token` issues a token for the asked scopes to `user`/`pass`; every `/v2/` request
/// needs a token whose scopes cover its repository and action.
#[derive(Debug)]
pub struct TokenProxy {
    /// `127.0.0.1:PORT` of the proxy: the registry address clients use.
    pub addr: String,
    stop: Arc<AtomicBool>,
    /// Every scope a token was issued for.
    pub issued: Arc<Mutex<Vec<String>>>,
}

impl TokenProxy {
    /// Starts the proxy in front of `upstream` (`host:port`).
    pub fn start(upstream: &str, user: &str, pass: &str) -> TokenProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(Mutex::new(Vec::new()));
        let tokens: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
        let state = Arc::new(ProxyState {
            addr: addr.clone(),
            upstream: upstream.to_owned(),
            credentials: format!("Basic {}", base64(format!("{user}:{pass}").as_bytes())),
            tokens,
            issued: issued.clone(),
        });
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let state = state.clone();
                std::thread::spawn(move || {
                    let _ = state.serve(stream);
                });
            }
        });
        TokenProxy { addr, stop, issued }
    }
}

impl Drop for TokenProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr);
    }
}

struct ProxyState {
    addr: String,
    upstream: String,
    credentials: String,
    /// token → scopes it grants.
    tokens: Arc<Mutex<HashMap<String, Vec<String>>>>,
    issued: Arc<Mutex<Vec<String>>>,
}

fn reply(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &str) {
    let mut text = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    let _ = stream.write_all(text.as_bytes());
}

fn query_values(query: &str, key: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl ProxyState {
    fn serve(&self, mut client: TcpStream) -> std::io::Result<()> {
        // Read the request head.
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            let n = client.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..n]);
            if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buffer.len() > 64 * 1024 {
                return Ok(());
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("");
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("").to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));

        if path == "/token" {
            if header("authorization").as_deref() != Some(self.credentials.as_str()) {
                reply(
                    &mut client,
                    "401 Unauthorized",
                    &[],
                    r#"{"details":"bad credentials"}"#,
                );
                return Ok(());
            }
            let scopes = query_values(query, "scope");
            let token = format!("token-{}", self.tokens.lock().unwrap().len() + 1);
            self.issued.lock().unwrap().extend(scopes.iter().cloned());
            self.tokens.lock().unwrap().insert(token.clone(), scopes);
            reply(
                &mut client,
                "200 OK",
                &[("Content-Type", "application/json".into())],
                &format!(r#"{{"token":"{token}","expires_in":300}}"#),
            );
            return Ok(());
        }

        // What the request needs: the repository and pull or push.
        let needed = path
            .strip_prefix("/v2/")
            .and_then(|rest| {
                ["/manifests/", "/blobs/", "/tags/"]
                    .iter()
                    .find_map(|m| rest.find(m).map(|i| rest[..i].to_owned()))
            })
            .map(|repository| {
                let action = if method == "GET" || method == "HEAD" {
                    "pull"
                } else {
                    "push"
                };
                (repository, action)
            });
        let granted = header("authorization")
            .and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned))
            .and_then(|token| self.tokens.lock().unwrap().get(&token).cloned());
        let allowed = match (&granted, &needed) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(scopes), Some((repository, action))) => scopes.iter().any(|scope| {
                scope.split(' ').any(|s| {
                    let mut f = s.splitn(3, ':');
                    f.next() == Some("repository")
                        && f.next() == Some(repository.as_str())
                        && f.next().is_some_and(|a| a.split(',').any(|x| x == *action))
                })
            }),
        };
        if !allowed {
            let scope = match &needed {
                Some((repository, "push")) => {
                    format!(r#",scope="repository:{repository}:pull,push""#)
                }
                Some((repository, _)) => format!(r#",scope="repository:{repository}:pull""#),
                None => String::new(),
            };
            reply(
                &mut client,
                "401 Unauthorized",
                &[(
                    "WWW-Authenticate",
                    format!(
                        r#"Bearer realm="http://{}/token",service="strata-test"{scope}"#,
                        self.addr
                    ),
                )],
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            );
            return Ok(());
        }

        // Forward: the head with `Connection: close` (one request per connection, so every
        // request is checked), then the bytes both ways.
        let mut upstream = TcpStream::connect(&self.upstream)?;
        let mut forwarded = format!("{request_line}\r\n");
        for (k, v) in &headers {
            if k != "connection" && k != "authorization" {
                forwarded.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        forwarded.push_str("connection: close\r\n\r\n");
        upstream.write_all(forwarded.as_bytes())?;
        upstream.write_all(&buffer[head_end..])?;
        let mut client_reader = client.try_clone()?;
        let mut upstream_writer = upstream.try_clone()?;
        let uploader = std::thread::spawn(move || {
            let _ = std::io::copy(&mut client_reader, &mut upstream_writer);
        });
        let _ = std::io::copy(&mut upstream, &mut client);
        let _ = client.shutdown(Shutdown::Both);
        let _ = upstream.shutdown(Shutdown::Both);
        let _ = uploader.join();
        Ok(())
    }
}
