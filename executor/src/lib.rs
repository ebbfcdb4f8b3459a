//! `strata-executor`: runs one process inside a root filesystem.
//!
//! Role: Linux namespaces, overlayfs mounts over snapshot chains, `RUN --mount` kinds, network
//! modes, hardening (capabilities, no_new_privs, seccomp, masked paths) and output capture.
//!
//! Key decision: this is the only crate allowed `unsafe` and raw syscalls, and only in its
//! `sys` module, each block with a `// SAFETY:` line.
//!
//! Status: not built yet (the executor issue fills it). No code on purpose.
