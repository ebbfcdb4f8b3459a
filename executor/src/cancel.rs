//! Cancelling a run: [`CancelToken`] and [`CancelOnDrop`].
//!
//! Role: a run blocks its thread while it supervises the sandbox; another thread (or an async
//! task) cancels it through a token. Key decision: the token is an eventfd that stays readable
//! once signalled, so the supervising loop waits on it with `poll` next to the output pipes and
//! the process's pidfd, and a token can be shared by several runs (a failing sibling vertex
//! cancels them all). Dropping a [`CancelOnDrop`] guard cancels, which gives an async caller
//! "dropping the future kills the sandbox".

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustix::event::{eventfd, EventfdFlags};

/// A shareable cancellation signal.
#[derive(Debug, Clone)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cancelled: AtomicBool,
    event: OwnedFd,
}

impl CancelToken {
    /// A token not yet cancelled.
    ///
    /// # Panics
    /// If the process is out of file descriptors.
    pub fn new() -> Self {
        let event = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .expect("eventfd for a cancel token");
        CancelToken {
            inner: Arc::new(Inner {
                cancelled: AtomicBool::new(false),
                event,
            }),
        }
    }

    /// Cancels every run watching this token; idempotent.
    pub fn cancel(&self) {
        if !self.inner.cancelled.swap(true, Ordering::SeqCst) {
            // The counter is never read back: it stays non-zero, so the fd stays readable.
            let _ = rustix::io::write(&self.inner.event, &1u64.to_ne_bytes());
        }
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// A guard that cancels this token when dropped.
    pub fn drop_guard(&self) -> CancelOnDrop {
        CancelOnDrop {
            token: Some(self.clone()),
        }
    }

    /// The fd that becomes readable on cancellation.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.inner.event.as_fd()
    }
}

impl Default for CancelToken {
    fn default() -> Self {
        Self::new()
    }
}

/// Cancels its token when dropped, unless [`disarm`](Self::disarm)ed.
#[derive(Debug)]
pub struct CancelOnDrop {
    token: Option<CancelToken>,
}

impl CancelOnDrop {
    /// Keeps the token alive without cancelling it on drop.
    pub fn disarm(mut self) {
        self.token = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(t) = self.token.take() {
            t.cancel();
        }
    }
}
