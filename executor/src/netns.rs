//! Network namespaces made ahead of time, for `--network none` sandboxes.
//!
//! Role: [`NetnsPool`] keeps one fresh, empty network namespace (only `lo`, up) ready; the
//! native sandbox's init enters it with `setns` instead of cloning into a new one.
//!
//! Key decisions:
//! - Creating a network namespace is the most expensive part of a sandbox (~0.7 ms of a
//!   5.5 ms trivial RUN on this machine, `cargo bench -p strata-executor --bench run`), and
//!   a build's steps mostly run one after another on one core: a filler thread makes the
//!   next namespace on the other core while a step runs.
//! - Every namespace is used by exactly one sandbox (taken out of the pool, its handle
//!   closed once the init holds it), so steps are as isolated from each other as with
//!   `CLONE_NEWNET`. When none is ready, or the filler cannot make them (no privilege), the
//!   sandbox clones a new one as before: the pool only ever saves time.
//! - The filler is a thread of its own because `unshare(CLONE_NEWNET)` moves the calling
//!   thread: it lives in the namespace it made last and does nothing else.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex};

use crate::sys;

/// How many namespaces wait ready (a second one would only help steps running in parallel,
/// at the price of a namespace nobody may use).
const READY: usize = 1;

/// A filler thread and the namespaces it made (see the module docs).
#[derive(Debug)]
pub(crate) struct NetnsPool {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct State {
    ready: Vec<OwnedFd>,
    /// The filler has stopped (the pool was dropped, or making a namespace failed).
    stopped: bool,
}

impl NetnsPool {
    /// Starts the filler; `None` if no thread can be started.
    pub(crate) fn start() -> Option<Self> {
        let shared = Arc::new(Shared::default());
        let filler = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("strata-netns".into())
            .spawn(move || fill(&filler))
            .ok()?;
        Some(NetnsPool { shared })
    }

    /// A fresh namespace if one is ready (never waits); the filler starts on the next.
    pub(crate) fn take(&self) -> Option<OwnedFd> {
        let mut state = self.shared.state.lock().ok()?;
        let ns = state.ready.pop();
        self.shared.wake.notify_all();
        ns
    }
}

impl Drop for NetnsPool {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.stopped = true;
            state.ready.clear();
        }
        self.shared.wake.notify_all();
    }
}

/// The filler thread: keeps [`READY`] namespaces made until the pool is dropped.
fn fill(shared: &Shared) {
    loop {
        {
            let Ok(mut state) = shared.state.lock() else {
                return;
            };
            while !state.stopped && state.ready.len() >= READY {
                state = match shared.wake.wait(state) {
                    Ok(state) => state,
                    Err(_) => return,
                };
            }
            if state.stopped {
                return;
            }
        }
        let made = sys::new_network_namespace();
        let Ok(mut state) = shared.state.lock() else {
            return;
        };
        match made {
            Ok(ns) if !state.stopped => state.ready.push(ns),
            // Dropped meanwhile, or no privilege for namespaces: sandboxes clone their own.
            _ => {
                state.stopped = true;
                return;
            }
        }
    }
}
