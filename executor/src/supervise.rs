//! Streaming a process's output while waiting for events: [`Pump`].
//!
//! Role: both backends read stdout and stderr from pipes into the caller's
//! [`OutputSink`](crate::OutputSink) while they wait for something else to happen (a control
//! message, the process's exit through its pidfd, a cancellation). One `poll(2)` covers all of
//! it, on the caller's thread: no helper threads, no async runtime.

use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;

use crate::output::OutputSink;

/// Reads two output pipes into a sink.
pub(crate) struct Pump<'a> {
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    sink: &'a mut dyn OutputSink,
    buf: Vec<u8>,
}

impl<'a> Pump<'a> {
    pub(crate) fn new(stdout: OwnedFd, stderr: OwnedFd, sink: &'a mut dyn OutputSink) -> Self {
        Pump {
            stdout: Some(stdout),
            stderr: Some(stderr),
            sink,
            buf: vec![0; 64 * 1024],
        }
    }

    /// Streams output until one of `events` is readable (or hung up); returns its index.
    pub(crate) fn wait(&mut self, events: &[BorrowedFd<'_>]) -> Result<usize, Errno> {
        loop {
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(events.len() + 2);
            for e in events {
                fds.push(PollFd::from_borrowed_fd(*e, PollFlags::IN));
            }
            let out_idx = self.stdout.as_ref().map(|fd| {
                fds.push(PollFd::new(fd, PollFlags::IN));
                fds.len() - 1
            });
            let err_idx = self.stderr.as_ref().map(|fd| {
                fds.push(PollFd::new(fd, PollFlags::IN));
                fds.len() - 1
            });
            match poll(&mut fds, None) {
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e),
            }
            let ready = |i: usize| !fds[i].revents().is_empty();
            let event = (0..events.len()).find(|&i| ready(i));
            let out_ready = out_idx.is_some_and(ready);
            let err_ready = err_idx.is_some_and(ready);
            drop(fds);
            if out_ready {
                self.read_one(true);
            }
            if err_ready {
                self.read_one(false);
            }
            if let Some(i) = event {
                return Ok(i);
            }
        }
    }

    /// Reads what is there on one pipe; closes it at end of file.
    fn read_one(&mut self, stdout: bool) {
        let slot = if stdout {
            &mut self.stdout
        } else {
            &mut self.stderr
        };
        let Some(fd) = slot else { return };
        match rustix::io::read(&*fd, &mut self.buf[..]) {
            Ok(0) => *slot = None,
            Ok(n) => {
                if stdout {
                    self.sink.stdout(&self.buf[..n]);
                } else {
                    self.sink.stderr(&self.buf[..n]);
                }
            }
            Err(Errno::INTR) | Err(Errno::AGAIN) => {}
            Err(_) => *slot = None,
        }
    }

    /// Reads both pipes to their end (once every writer is gone).
    pub(crate) fn drain(&mut self) {
        while self.stdout.is_some() || self.stderr.is_some() {
            // With no events, `wait` only returns on error; reading to EOF ends the loop.
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(2);
            if let Some(fd) = &self.stdout {
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
            if let Some(fd) = &self.stderr {
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
            match poll(&mut fds, None) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(_) => return,
            }
            drop(fds);
            if self.stdout.is_some() {
                self.read_ready(true);
            }
            if self.stderr.is_some() {
                self.read_ready(false);
            }
        }
    }

    fn read_ready(&mut self, stdout: bool) {
        let fd = if stdout { &self.stdout } else { &self.stderr };
        let Some(fd) = fd else { return };
        let mut one = [PollFd::new(fd, PollFlags::IN)];
        if matches!(poll(&mut one, Some(&rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 })), Ok(n) if n > 0)
        {
            self.read_one(stdout);
        }
    }
}
