//! `ADD <git url>`: the `Git` source, a checkout in a snapshot of its own, made with the
//! `git` command as BuildKit does.
//!
//! Main type: [`GitSource`], held by the worker for one build: it resolves a ref to a
//! commit for the cache key (`git ls-remote`, once per remote and ref) and checks the commit
//! out when the step runs.
//!
//! Key decisions (BuildKit's `source/git`):
//! - The cache key is the commit (plus `.git#REF` with `--keep-git-dir`), so a rebuild
//!   re-resolves the ref on every build and stays cached until the branch or tag moves. A
//!   full commit id as the ref needs no network at all.
//! - `--checksum` must be a prefix of the commit (or of an annotated tag's object):
//!   `expected checksum to match WANT, got GOT`.
//! - Objects are fetched with `--depth=1` into a bare repository in the snapshot's work
//!   directory (removed at commit), then checked out with `--no-overlay`; with
//!   `--keep-git-dir` a real `.git` is made by fetching from that bare repository over
//!   `file://` (never git's local-clone shortcut), `origin` set back to the remote URL with
//!   its credentials removed, reflogs expired.
//! - git runs without the system or user config, with no terminal prompt, and may only use
//!   the network protocols a Dockerfile can name (https, http, git, ssh); `file` is allowed
//!   only for the internal clone.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use strata_cache::{Lease, SnapshotId, Store};
use strata_solver::Digest;

/// Why a git source failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The `git` command could not be started.
    #[error("failed to run git: {source} (is git installed?)")]
    Spawn {
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A git command failed (BuildKit's wording, with git's own message).
    #[error("failed to {action} {remote}: {stderr}")]
    Command {
        /// What was being done (`fetch remote`, `checkout remote`…).
        action: &'static str,
        /// The remote, credentials removed.
        remote: String,
        /// git's stderr, trimmed.
        stderr: String,
    },
    /// The remote has no such branch, tag or ref.
    #[error("repository {remote} does not contain ref {reference}")]
    NoSuchRef {
        /// The remote, credentials removed.
        remote: String,
        /// The ref asked for.
        reference: String,
    },
    /// `--checksum` does not match what the ref resolves to (BuildKit's text).
    #[error("expected checksum to match {expected}, got {got}")]
    ChecksumMismatch {
        /// The `--checksum` value.
        expected: String,
        /// The commit (or annotated tag) found.
        got: String,
    },
    /// The remote moved the ref between resolving and fetching it.
    #[error("fetched ref {reference} of {remote} is {got}, not the resolved commit {expected}")]
    Moved {
        /// The remote, credentials removed.
        remote: String,
        /// The ref.
        reference: String,
        /// Commit resolved for the cache key.
        expected: String,
        /// Commit fetched.
        got: String,
    },
    /// The snapshot could not be prepared or committed.
    #[error(transparent)]
    Snapshot(#[from] strata_cache::SnapshotError),
    /// A file of the checkout could not be handled.
    #[error("git checkout: {0}")]
    Io(#[from] std::io::Error),
}

/// What a `Git` op asks for.
#[derive(Debug, Clone, Copy)]
pub struct GitRequest<'a> {
    /// Remote URL.
    pub url: &'a str,
    /// Branch, tag, full ref or commit (empty: the remote's default branch).
    pub reference: &'a str,
    /// Keep `.git`.
    pub keep_git_dir: bool,
    /// Expected commit prefix.
    pub checksum: Option<&'a str>,
}

impl GitRequest<'_> {
    fn resolve_key(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(b"strata.git.ref.v1\0");
        h.update(self.url.as_bytes());
        h.update(b"\0");
        h.update(self.reference.as_bytes());
        *h.finalize().as_bytes()
    }
}

/// A ref resolved on the remote.
#[derive(Debug, Clone)]
struct Resolved {
    /// The full ref (`refs/heads/main`), or the commit when one was asked for.
    full_ref: String,
    /// What `full_ref` points at (a commit, or an annotated tag object).
    object: String,
    /// The commit of an annotated tag.
    peeled: Option<String>,
}

impl Resolved {
    fn commit(&self) -> &str {
        self.peeled.as_deref().unwrap_or(&self.object)
    }
}

/// Git checkouts for one build.
#[derive(Debug)]
pub struct GitSource {
    lease: Arc<Lease>,
    resolved: Mutex<HashMap<[u8; 32], Resolved>>,
}

/// `git` with a clean environment: no system/user config, no prompts.
fn git() -> Command {
    let mut cmd = Command::new("git");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .env("LC_ALL", "C")
        .args(["-c", "protocol.allow=never"])
        .args(["-c", "protocol.https.allow=always"])
        .args(["-c", "protocol.http.allow=always"])
        .args(["-c", "protocol.git.allow=always"])
        .args(["-c", "protocol.ssh.allow=always"])
        .stdin(Stdio::null());
    // The client's proxy and ssh agent settings reach git, as with BuildKit's host git.
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "SSH_AUTH_SOCK",
        "HOME",
    ] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    cmd
}

/// Runs `cmd`; its stdout on success, else a [`GitError::Command`].
fn run(mut cmd: Command, action: &'static str, remote: &str) -> Result<String, GitError> {
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| GitError::Spawn { source })?;
    if !out.status.success() {
        return Err(GitError::Command {
            action,
            remote: redact(remote),
            stderr: String::from_utf8_lossy(&out.stderr)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A URL without its `user:password@` part.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host_end = rest.find('/').unwrap_or(rest.len());
            match rest[..host_end].rfind('@') {
                Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

/// A full commit id (sha1 or sha256).
fn is_commit_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl GitSource {
    /// Checkouts kept under `lease` until the build ends.
    pub fn new(lease: Lease) -> Self {
        Self {
            lease: Arc::new(lease),
            resolved: Mutex::new(HashMap::new()),
        }
    }

    /// The content key of `req`: the commit its ref names now.
    pub async fn content_key(&self, req: GitRequest<'_>) -> Result<Digest, GitError> {
        let resolved = self.resolve(req).await?;
        // BuildKit's shaToCacheKey: the checkout's commit, plus the ref with a kept .git
        // (its refs differ per ref name).
        let mut key = if req.keep_git_dir {
            format!("{}.git#{}", resolved.object, resolved.full_ref)
        } else {
            resolved.commit().to_string()
        };
        key.insert_str(0, "strata.git.v1\0");
        Ok(Digest(*blake3::hash(key.as_bytes()).as_bytes()))
    }

    /// A snapshot holding the checkout of `req`.
    pub async fn snapshot(
        &self,
        store: &Store,
        req: GitRequest<'_>,
    ) -> Result<SnapshotId, GitError> {
        let resolved = self.resolve(req).await?;
        let (store, lease) = (store.clone(), self.lease.clone());
        let (url, reference, keep) = (
            req.url.to_string(),
            req.reference.to_string(),
            req.keep_git_dir,
        );
        tokio::task::spawn_blocking(move || {
            checkout(&store, &lease, &url, &reference, keep, &resolved)
        })
        .await
        .map_err(|e| GitError::Io(std::io::Error::other(e.to_string())))?
    }

    async fn resolve(&self, req: GitRequest<'_>) -> Result<Resolved, GitError> {
        let key = req.resolve_key();
        if let Some(r) = self.resolved.lock().unwrap().get(&key) {
            return Ok(r.clone());
        }
        let resolved = if is_commit_id(req.reference) {
            Resolved {
                full_ref: req.reference.to_string(),
                object: req.reference.to_string(),
                peeled: None,
            }
        } else {
            let (url, reference) = (req.url.to_string(), req.reference.to_string());
            tokio::task::spawn_blocking(move || ls_remote(&url, &reference))
                .await
                .map_err(|e| GitError::Io(std::io::Error::other(e.to_string())))??
        };
        if let Some(expected) = req.checksum {
            let matches = |sha: &str| !expected.is_empty() && sha.starts_with(expected);
            if !matches(&resolved.object) && !resolved.peeled.as_deref().is_some_and(matches) {
                return Err(GitError::ChecksumMismatch {
                    expected: expected.to_string(),
                    got: resolved.commit().to_string(),
                });
            }
        }
        self.resolved.lock().unwrap().insert(key, resolved.clone());
        Ok(resolved)
    }
}

/// Resolves `reference` (empty: the default branch) on `url` as BuildKit does: an exact
/// `refs/…` match, else a branch, else a tag.
fn ls_remote(url: &str, reference: &str) -> Result<Resolved, GitError> {
    let reference = if reference.is_empty() {
        let mut cmd = git();
        cmd.args(["ls-remote", "--symref", "--", url, "HEAD"]);
        let out = run(cmd, "fetch remote", url)?;
        out.lines()
            .find_map(|l| l.strip_prefix("ref: ")?.strip_suffix("\tHEAD"))
            .map(str::to_string)
            .ok_or_else(|| GitError::NoSuchRef {
                remote: redact(url),
                reference: "HEAD".into(),
            })?
    } else {
        reference.to_string()
    };
    let mut cmd = git();
    cmd.args([
        "ls-remote",
        "--",
        url,
        &reference,
        &format!("{reference}^{{}}"),
    ]);
    let out = run(cmd, "fetch remote", url)?;
    let bare = reference
        .strip_prefix("refs/")
        .unwrap_or(&reference)
        .to_string();
    let exact = format!("refs/{bare}");
    let head = format!(
        "refs/heads/{}",
        reference.strip_prefix("refs/heads/").unwrap_or(&reference)
    );
    let tag = format!(
        "refs/tags/{}",
        reference.strip_prefix("refs/tags/").unwrap_or(&reference)
    );
    let peeled_tag = format!("{tag}^{{}}");
    let mut found: HashMap<&str, &str> = HashMap::new();
    for line in out.lines() {
        if let Some((sha, name)) = line.split_once('\t') {
            found.insert(name, sha);
        }
    }
    let pick = |name: &str| found.get(name).map(|s| (name.to_string(), s.to_string()));
    let (full_ref, object, peeled) = if let Some((r, s)) = pick(&exact).or_else(|| pick(&head)) {
        (r, s, None)
    } else if let Some((r, s)) = pick(&tag) {
        (r, s, found.get(peeled_tag.as_str()).map(|s| s.to_string()))
    } else {
        return Err(GitError::NoSuchRef {
            remote: redact(url),
            reference,
        });
    };
    Ok(Resolved {
        full_ref,
        object,
        peeled,
    })
}

/// Fetches the resolved commit and checks it out into a new committed snapshot.
fn checkout(
    store: &Store,
    lease: &Lease,
    url: &str,
    reference: &str,
    keep_git_dir: bool,
    resolved: &Resolved,
) -> Result<SnapshotId, GitError> {
    let prepared = store.snapshots().prepare(None, lease)?;
    let work = prepared.work();
    let diff = prepared.diff();
    let bare = work.join("remote.git");
    let git_in = |dir: &Path| {
        let mut cmd = git();
        cmd.arg("--git-dir").arg(dir);
        cmd
    };
    let mut init = git();
    init.args(["-c", "init.defaultBranch=master", "init", "--bare", "-q"])
        .arg(&bare);
    run(init, "fetch remote", url)?;

    // The object to fetch: the ref itself (so a kept .git gets its name), or the commit.
    let target = "refs/strata/target";
    let by_commit = is_commit_id(&resolved.full_ref);
    let mut fetch = git_in(&bare);
    fetch.args([
        "fetch",
        "-q",
        "--depth=1",
        "--no-tags",
        "--force",
        "--",
        url,
    ]);
    fetch.arg(format!("{}:{target}", resolved.full_ref));
    if let Err(e) = run(fetch, "fetch remote", url) {
        if !by_commit {
            return Err(e);
        }
        // A server that refuses a want by id: fetch every branch and tag instead.
        let mut all = git_in(&bare);
        all.args(["fetch", "-q", "--force", "--", url])
            .args(["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]);
        run(all, "fetch remote", url)?;
        let mut pin = git_in(&bare);
        pin.args(["update-ref", target, &resolved.full_ref]);
        run(pin, "fetch remote", url)?;
    }
    let mut parse = git_in(&bare);
    parse.args(["rev-parse", &format!("{target}^{{commit}}")]);
    let fetched = run(parse, "fetch remote", url)?.trim().to_string();
    if fetched != resolved.commit() {
        return Err(GitError::Moved {
            remote: redact(url),
            reference: reference.to_string(),
            expected: resolved.commit().to_string(),
            got: fetched,
        });
    }

    if keep_git_dir {
        let dot_git = diff.join(".git");
        let mut init = git();
        init.args(["-c", "init.defaultBranch=master", "init", "-q"])
            .arg(&diff);
        run(init, "checkout remote", url)?;
        // The ref as the remote names it, or a pinned name for a bare commit.
        let local_ref = if by_commit {
            format!("refs/strata/{}", &resolved.object[..12])
        } else {
            resolved.full_ref.clone()
        };
        let file_url = format!("file://{}", bare.display());
        let steps: Vec<Vec<String>> = vec![
            vec!["remote".into(), "add".into(), "origin".into(), file_url],
            vec![
                "-c".into(),
                "protocol.file.allow=always".into(),
                "fetch".into(),
                "-q".into(),
                "-u".into(),
                "--depth=1".into(),
                "--".into(),
                "origin".into(),
                format!("{target}:{local_ref}"),
            ],
            vec!["checkout".into(), "-q".into(), "FETCH_HEAD".into()],
            vec![
                "remote".into(),
                "set-url".into(),
                "origin".into(),
                redact(url),
            ],
            vec![
                "reflog".into(),
                "expire".into(),
                "--all".into(),
                "--expire=now".into(),
            ],
        ];
        for step in steps {
            let mut cmd = git_in(&dot_git);
            cmd.arg("--work-tree").arg(&diff).args(&step);
            run(cmd, "checkout remote", url)?;
        }
        let _ = std::fs::remove_file(dot_git.join("FETCH_HEAD"));
    } else {
        let mut co = git_in(&bare);
        co.arg("--work-tree").arg(&diff).args([
            "checkout",
            "-q",
            "--no-overlay",
            target,
            "--",
            ".",
        ]);
        run(co, "checkout remote", url)?;
    }
    if diff.join(".gitmodules").exists() {
        let git_dir = if keep_git_dir {
            diff.join(".git")
        } else {
            bare.clone()
        };
        let mut sub = git_in(&git_dir);
        sub.arg("--work-tree").arg(&diff).current_dir(&diff).args([
            "submodule",
            "update",
            "--init",
            "--recursive",
            "--depth=1",
        ]);
        run(sub, "update submodules for", url)?;
    }
    let record = store.snapshots().commit(prepared, None)?;
    Ok(record.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_leave_in_messages() {
        assert_eq!(
            redact("https://user:secret@example.com/r.git"),
            "https://example.com/r.git"
        );
        assert_eq!(
            redact("https://example.com/a@b.git"),
            "https://example.com/a@b.git"
        );
        assert_eq!(redact("git@github.com:o/r.git"), "git@github.com:o/r.git");
    }

    #[test]
    fn commit_ids() {
        assert!(is_commit_id(&"a".repeat(40)));
        assert!(is_commit_id(&"0".repeat(64)));
        assert!(!is_commit_id("main"));
        assert!(!is_commit_id(&"A".repeat(40)));
    }
}
