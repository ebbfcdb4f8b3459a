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
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SshForward {
    /// Listens at `path` (created with `mode`, owned by `uid:gid`) and relays to `agent`.
    pub fn start(path: PathBuf, agent: &Path, mode: u32, uid: u32, gid: u32) -> io::Result<Self> {
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
    }
}
