//! Registry credentials and authentication challenges.
//!
//! Main items: [`Credentials`], [`DockerConfig`] (`~/.docker/config.json`: `auths`,
//! `credHelpers`, `credsStore`, read the way the Docker CLI reads them) and [`Challenge`]
//! (a parsed `WWW-Authenticate` header: `Basic` or `Bearer realm=…,service=…,scope=…`).
//!
//! Key decision: credentials are looked up per registry host when a registry first asks for
//! them (a 401), never sent unasked, and credential helpers are run as
//! `docker-credential-<name> get` with the server on stdin, exactly as Docker runs them, so
//! any helper that works for `docker login` works here.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use super::reference::DOCKER_HUB;

/// The key Docker stores Docker Hub credentials under.
const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// Why credentials could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The Docker config file is unreadable or invalid.
    #[error("cannot read docker config {path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A credential helper failed.
    #[error("credential helper docker-credential-{helper} failed for {server}: {reason}")]
    Helper {
        /// The helper's name (`pass`, `ecr-login`…).
        helper: String,
        /// The server asked about.
        server: String,
        /// What went wrong.
        reason: String,
    },
}

/// A user name and a secret for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// User name and password (sent as Basic auth, or to the token server).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// An identity (refresh) token, exchanged at the token server for access tokens.
    IdentityToken(String),
}

impl std::fmt::Debug for Credentials {
    // Secrets never reach logs or error messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::IdentityToken(_) => write!(f, "IdentityToken(***)"),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

#[derive(Debug, Deserialize)]
struct HelperReply {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// A Docker CLI config file's credential settings.
#[derive(Debug, Default)]
pub struct DockerConfig {
    path: Option<PathBuf>,
    file: ConfigFile,
}

impl DockerConfig {
    /// Where Docker looks: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
            return Some(PathBuf::from(dir).join("config.json"));
        }
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
    }

    /// Reads `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<DockerConfig, AuthError> {
        let fail = |reason: String| AuthError::Config {
            path: path.to_owned(),
            reason,
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(DockerConfig::default())
            }
            Err(e) => return Err(fail(e.to_string())),
        };
        let file: ConfigFile = serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string()))?;
        Ok(DockerConfig {
            path: Some(path.to_owned()),
            file,
        })
    }

    /// Reads the default config (see [`DockerConfig::default_path`]).
    pub fn load_default() -> Result<DockerConfig, AuthError> {
        match Self::default_path() {
            Some(path) => Self::load(&path),
            None => Ok(DockerConfig::default()),
        }
    }

    /// The credentials for `registry` (a host such as `docker.io` or `127.0.0.1:5000`):
    /// a `credHelpers` entry first, then `credsStore`, then `auths`.
    pub fn credentials(&self, registry: &str) -> Result<Option<Credentials>, AuthError> {
        let server = if registry == DOCKER_HUB {
            DOCKER_HUB_AUTH_KEY
        } else {
            registry
        };
        if let Some(helper) = self.file.cred_helpers.get(registry) {
            return run_helper(helper, server);
        }
        if let Some(store) = self.file.creds_store.as_deref().filter(|s| !s.is_empty()) {
            if let Some(found) = run_helper(store, server)? {
                return Ok(Some(found));
            }
        }
        let Some(entry) = self
            .file
            .auths
            .iter()
            .find(|(key, _)| auth_key_host(key) == auth_key_host(server))
            .map(|(_, entry)| entry)
        else {
            return Ok(None);
        };
        if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credentials::IdentityToken(token.to_owned())));
        }
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let fail = |reason: &str| AuthError::Config {
                path: self.path.clone().unwrap_or_default(),
                reason: format!("auths[{server:?}].auth: {reason}"),
            };
            let decoded = decode_base64(auth).ok_or_else(|| fail("not base64"))?;
            let decoded = String::from_utf8(decoded).map_err(|_| fail("not UTF-8"))?;
            let (username, password) = decoded
                .split_once(':')
                .ok_or_else(|| fail("not user:password"))?;
            return Ok(Some(Credentials::Basic {
                username: username.to_owned(),
                password: password.trim_end_matches('\n').to_owned(),
            }));
        }
        match (&entry.username, &entry.password) {
            (Some(username), Some(password)) => Ok(Some(Credentials::Basic {
                username: username.clone(),
                password: password.clone(),
            })),
            _ => Ok(None),
        }
    }
}

/// The host part of an `auths` key (`https://host/v1/` → `host`), as Docker matches them.
fn auth_key_host(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest);
    match host {
        "index.docker.io" | "registry-1.docker.io" | DOCKER_HUB => "index.docker.io",
        other => other,
    }
}

/// Runs `docker-credential-<helper> get` for `server`.
fn run_helper(helper: &str, server: &str) -> Result<Option<Credentials>, AuthError> {
    let fail = |reason: String| AuthError::Helper {
        helper: helper.to_owned(),
        server: server.to_owned(),
        reason,
    };
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // Docker's helpers say this when they hold nothing for the server.
        if stdout.contains("credentials not found") || stdout.trim().is_empty() {
            return Ok(None);
        }
        return Err(fail(stdout.trim().to_owned()));
    }
    let reply: HelperReply =
        serde_json::from_slice(&out.stdout).map_err(|e| fail(format!("invalid reply: {e}")))?;
    if reply.username == "<token>" {
        return Ok(Some(Credentials::IdentityToken(reply.secret)));
    }
    Ok(Some(Credentials::Basic {
        username: reply.username,
        password: reply.secret,
    }))
}

/// Standard base64 (with or without padding); `None` if invalid.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in text.trim().bytes().take_while(|&b| b != b'=') {
        let value = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm=…`: send the credentials on every request.
    Basic,
    /// `Bearer realm=…,service=…,scope=…`: fetch a token from `realm`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter to pass back.
        service: Option<String>,
        /// The scope the registry asked for, if it said.
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses one header value; `None` for schemes this client does not speak.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let params = parse_params(rest);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Challenge::Basic),
            "bearer" => Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
            }),
            _ => None,
        }
    }
}

/// `k=v, k="v, with commas"` → map (keys lowercased).
fn parse_params(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ','))
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            continue;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ','))
                .collect::<String>()
                .trim()
                .to_owned();
        }
        out.insert(key, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull,push".into()),
            })
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
        assert_eq!(Challenge::parse("Bearer service=x"), None);
    }

    #[test]
    fn base64() {
        assert_eq!(decode_base64("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(decode_base64("YQ==").unwrap(), b"a");
        assert!(decode_base64("a*b").is_none());
    }

    #[test]
    fn config_auths_match_by_host() {
        let dir = std::env::temp_dir().join(format!("strata-auth-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},
                "http://127.0.0.1:5000":{"username":"u","password":"p"}}}"#,
        )
        .unwrap();
        let config = DockerConfig::load(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            config.credentials("docker.io").unwrap(),
            Some(Credentials::Basic {
                username: "user".into(),
                password: "pass".into()
            })
        );
        assert_eq!(
            config.credentials("127.0.0.1:5000").unwrap(),
            Some(Credentials::Basic {
                username: "u".into(),
                password: "p".into()
            })
        );
        assert_eq!(config.credentials("example.com").unwrap(), None);
        assert_eq!(
            format!("{:?}", config.credentials("docker.io").unwrap()),
            "Some(Basic(user, ***))"
        );
    }
}
