//! The store root: `--root`, else `$STRATA_ROOT` (clap reads both), else the default —
//! `/var/lib/strata` for root, `$XDG_DATA_HOME/strata` (or `~/.local/share/strata`) for
//! other users, as the design's §1 says.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use strata_cache::Store;

/// The default root for this user.
pub fn default_root() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/strata");
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(data).join("strata");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/strata"),
        None => PathBuf::from("/var/lib/strata"),
    }
}

/// Opens the store under `root` (or the default).
pub fn open(root: Option<&Path>) -> Result<Store> {
    let root = root.map_or_else(default_root, Path::to_path_buf);
    // Absolute, because the sandbox mounts snapshot paths after changing directory.
    let root = std::path::absolute(&root)
        .with_context(|| format!("invalid store root {}", root.display()))?;
    Store::open(&root).with_context(|| format!("cannot open the store at {}", root.display()))
}
