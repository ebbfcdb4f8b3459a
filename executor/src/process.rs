//! How a process ended ([`ExitStatus`]) and how its command is found (`PATH` lookup).
//!
//! Role: the portable half of starting a process: the candidate paths for `args[0]` (searched
//! in the sandbox's own `PATH`, as runc does) and the texts of start failures, which follow
//! runc's so BuildKit users see familiar messages.

use std::ffi::CString;

use crate::error::ExecError;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

impl ExitStatus {
    /// Exit code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }

    /// The code a shell (and BuildKit, through runc) reports: the exit code, or 128 + signal.
    pub fn exit_code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }

    /// `Ok` on success, else BuildKit's error for a failing process:
    /// `process "/bin/sh -c exit 3" did not complete successfully: exit code: 3`.
    pub fn check(self, args: &[String]) -> Result<(), ExecError> {
        if self.success() {
            Ok(())
        } else {
            Err(ExecError::ProcessFailed {
                command: args.join(" "),
                status: self,
            })
        }
    }

    /// Decodes a raw `wait` status.
    pub(crate) fn from_raw(raw: i32) -> Self {
        let sig = raw & 0x7f;
        if sig == 0 {
            ExitStatus::Code((raw >> 8) & 0xff)
        } else {
            ExitStatus::Signal(sig)
        }
    }
}

/// The paths to try for `arg0`, in order: itself when it has a `/`, else each `PATH` entry
/// joined with it (an empty entry means the working directory, as in `execvp`).
pub(crate) fn exec_candidates(arg0: &str, path_env: &str) -> Vec<CString> {
    let to_c = |s: String| CString::new(s).ok();
    if arg0.contains('/') {
        return to_c(arg0.to_owned()).into_iter().collect();
    }
    path_env
        .split(':')
        .filter_map(|dir| {
            let dir = if dir.is_empty() { "." } else { dir };
            to_c(format!("{}/{}", dir.trim_end_matches('/'), arg0))
        })
        .collect()
}

/// runc's text for a command that could not be started.
pub(crate) fn start_failure(arg0: &str, errno: i32) -> String {
    let err = rustix::io::Errno::from_raw_os_error(errno);
    if !arg0.contains('/') && errno == libc::ENOENT {
        format!("exec: \"{arg0}\": executable file not found in $PATH")
    } else if errno == libc::ENOENT {
        format!("exec: \"{arg0}\": stat {arg0}: no such file or directory")
    } else {
        format!("exec {arg0}: {}", describe_errno(err))
    }
}

/// The lowercase text of an errno, as Go prints it.
pub(crate) fn describe_errno(err: rustix::io::Errno) -> String {
    let text = std::io::Error::from_raw_os_error(err.raw_os_error()).to_string();
    // "No such file or directory (os error 2)" → "no such file or directory"
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_status() {
        assert_eq!(ExitStatus::from_raw(3 << 8), ExitStatus::Code(3));
        assert_eq!(ExitStatus::from_raw(9), ExitStatus::Signal(9));
        assert_eq!(ExitStatus::Signal(9).exit_code(), 137);
    }

    #[test]
    fn candidates() {
        let c = exec_candidates("sh", "/usr/bin:/bin:");
        let c: Vec<_> = c.iter().map(|c| c.to_str().unwrap()).collect();
        assert_eq!(c, ["/usr/bin/sh", "/bin/sh", "./sh"]);
        assert_eq!(exec_candidates("./x", "/bin").len(), 1);
    }

    #[test]
    fn failure_text() {
        let err = ExitStatus::Code(3)
            .check(&["/bin/sh".into(), "-c".into(), "exit 3".into()])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3"
        );
        assert_eq!(
            start_failure("nope", libc::ENOENT),
            "exec: \"nope\": executable file not found in $PATH"
        );
        assert_eq!(
            describe_errno(rustix::io::Errno::ACCESS),
            "permission denied"
        );
    }
}
