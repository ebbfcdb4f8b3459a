//! Where a process's output goes: the [`OutputSink`] trait and two ready-made sinks.
//!
//! Role: stdout and stderr are read from two pipes and handed to the sink as they arrive, so
//! a caller can turn them into live progress events. Key decision: the sink gets raw bytes,
//! in the order each stream produced them; splitting into lines is the caller's business.

/// Receives a process's output while it runs.
pub trait OutputSink: Send {
    /// A chunk of standard output.
    fn stdout(&mut self, data: &[u8]);
    /// A chunk of standard error.
    fn stderr(&mut self, data: &[u8]);
}

/// A sink that keeps both streams in memory.
#[derive(Debug, Default, Clone)]
pub struct CollectOutput {
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
}

impl OutputSink for CollectOutput {
    fn stdout(&mut self, data: &[u8]) {
        self.stdout.extend_from_slice(data);
    }
    fn stderr(&mut self, data: &[u8]) {
        self.stderr.extend_from_slice(data);
    }
}

/// A sink that drops everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct DiscardOutput;

impl OutputSink for DiscardOutput {
    fn stdout(&mut self, _: &[u8]) {}
    fn stderr(&mut self, _: &[u8]) {}
}
