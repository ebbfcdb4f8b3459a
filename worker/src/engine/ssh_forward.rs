//! `RUN --mount=type=ssh`: an SSH agent of the client, forwarded into one step.
//!
//! Role: [`SshForward`] listens on a fresh Unix socket (owner and mode as the mount asks,
//! BuildKit's defaults root and 0600) and relays every connection to the client's agent
//! socket; the executor bind-mounts that socket at the mount's target. Dropping it stops the
//! listener and removes the socket.
//!
//! Key decision — a relay, not a bind of the agent's own socket: the step's user must be able
//! to connect (`uid`/`gid`/`mode` of the mount) without changing the client's socket, and the
//! client's path never appears in the sandbox, as BuildKit's session forwarding.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A relay from a socket made for one step to the client's agent; stops when dropped.
#[derive(Debug)]
pub struct SshForward {
    path: PathBuf,
    /// A private directory made for the socket when the asked path was too long.
    own_dir: Option<PathBuf>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SshForward {
    /// Listens at `path` (created with `mode`, owned by `uid:gid`) and relays to `agent`.
    pub fn start(path: PathBuf, agent: &Path, mode: u32, uid: u32, gid: u32) -> io::Result<Self> {
        // A socket path has at most 107 bytes; a deep store root gets a short private dir.
        let (path, own_dir) = if path.as_os_str().len() > 100 {
            use std::sync::atomic::{AtomicU64, Ordering};
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "strata-ssh-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir(&dir)?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
            (dir.join("agent"), Some(dir))
        } else {
            (path, None)
        };
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (agent, flag) = (agent.to_path_buf(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("ssh-forward".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if flag.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(client) = conn else { continue };
                    // An agent that went away: the step sees its connection closed.
                    if let Ok(upstream) = UnixStream::connect(&agent) {
                        relay(client, upstream);
                    }
                }
            })?;
        Ok(SshForward {
            path,
            own_dir,
            stop,
            thread: Some(thread),
        })
    }

    /// The socket to mount into the step.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Copies both ways between the two streams on their own threads, half-closing each
/// direction at its end.
fn relay(client: UnixStream, upstream: UnixStream) {
    let pair = client
        .try_clone()
        .and_then(|c| Ok((c, upstream.try_clone()?)));
    let Ok((client2, upstream2)) = pair else {
        return;
    };
    let one_way = |mut from: UnixStream, mut to: UnixStream| {
        move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Write);
        }
    };
    let _ = std::thread::Builder::new()
        .name("ssh-relay".into())
        .spawn(one_way(client, upstream));
    let _ = std::thread::Builder::new()
        .name("ssh-relay".into())
        .spawn(one_way(upstream2, client2));
}

impl Drop for SshForward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop so it sees the flag (if that fails, the thread is left
        // blocked rather than this drop).
        if UnixStream::connect(&self.path).is_ok() {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        let _ = std::fs::remove_file(&self.path);
        if let Some(dir) = &self.own_dir {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// An "agent" that answers each connection with what it read, reversed.
    fn echo_agent(path: &Path) -> std::thread::JoinHandle<()> {
        let listener = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            if let Ok((mut c, _)) = listener.accept() {
                let mut buf = [0u8; 4];
                c.read_exact(&mut buf).unwrap();
                buf.reverse();
                c.write_all(&buf).unwrap();
            }
        })
    }

    #[test]
    fn relays_and_takes_long_paths() {
        let dir = std::env::temp_dir().join(format!("strata-sshf-{}", std::process::id()));
        let deep = dir.join("d".repeat(120));
        std::fs::create_dir_all(&deep).unwrap();
        let agent = dir.join("agent.sock");
        let server = echo_agent(&agent);
        let relay = SshForward::start(deep.join("relay"), &agent, 0o600, 0, 0).unwrap();
        assert!(relay.path().as_os_str().len() < 100, "{:?}", relay.path());
        let mode = std::fs::metadata(relay.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut c = UnixStream::connect(relay.path()).unwrap();
        c.write_all(b"abcd").unwrap();
        let mut back = [0u8; 4];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"dcba");
        server.join().unwrap();
        let path = relay.path().to_path_buf();
        drop(relay);
        assert!(!path.exists());
        assert!(!path.parent().unwrap().exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
