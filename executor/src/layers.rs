//! Layered bind sources: `RUN --mount=type=bind` of a filesystem made of snapshot layers (a
//! stage, an image, a staged selection of the context).
//!
//! Role: [`LayerScratch`] owns the per-run scratch directories (an overlay upper and work
//! directory per such mount, on the executor's disk, removed after the run, so writes under a
//! writable bind are discarded and never reach a layer); [`PreparedLayers`] is one such mount
//! ready for a backend: the overlay to mount and the path inside it to show at the target,
//! already resolved.
//!
//! Key decision: the `source=` path is resolved before the run, through the layers in user
//! space ([`rootfs::resolve_in_layers`]), symlinks staying inside the mounted filesystem as
//! BuildKit's `RootPath` does. Both backends then mount the overlay privately and bind the
//! resolved, symlink-free path, so an image's symlink can never aim a bind at the host, and
//! the stub at the target is made as the right kind (file or directory) up front.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::FileType;

use crate::error::ExecError;
use crate::mount::MountError;
use crate::rootfs::{self, OverlayMount};

/// One layered bind mount, prepared.
#[derive(Debug)]
pub(crate) struct PreparedLayers {
    /// The overlay (lowers = the layers, upper = a discarded scratch directory).
    pub overlay: OverlayMount,
    /// The resolved source path inside the overlay, relative (`.` for its root).
    pub path: String,
    /// Whether the source is a directory (else the target stub is a file).
    pub is_dir: bool,
}

/// Scratch directories of one run's layered binds; removed when dropped.
#[derive(Debug)]
pub(crate) struct LayerScratch {
    dir: PathBuf,
    created: bool,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl LayerScratch {
    /// Scratch space for one run under `base` (created only when a mount needs it).
    pub(crate) fn new(base: &Path) -> LayerScratch {
        LayerScratch {
            dir: base.join(format!(
                "{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            )),
            created: false,
        }
    }

    /// Prepares mount number `index`: `source` (absolute in the layered filesystem) over
    /// `lowerdirs` (topmost first).
    pub(crate) fn prepare(
        &mut self,
        index: usize,
        lowerdirs: &[PathBuf],
        source: &str,
    ) -> Result<PreparedLayers, ExecError> {
        let layers: Vec<&Path> = lowerdirs.iter().map(PathBuf::as_path).collect();
        let (resolved, kind) =
            rootfs::resolve_in_layers(&layers, source).ok_or_else(|| MountError::NotFound {
                path: source.to_owned(),
            })?;
        let upper = self.dir.join(format!("{index}/upper"));
        let work = self.dir.join(format!("{index}/work"));
        for d in [&upper, &work] {
            std::fs::create_dir_all(d).map_err(|e| MountError::Source {
                path: d.clone(),
                source: e,
            })?;
        }
        self.created = true;
        let path = resolved.trim_start_matches('/');
        Ok(PreparedLayers {
            overlay: OverlayMount::new(lowerdirs, &upper, &work)?,
            path: if path.is_empty() {
                ".".to_owned()
            } else {
                path.to_owned()
            },
            is_dir: kind == FileType::Directory,
        })
    }
}

impl Drop for LayerScratch {
    fn drop(&mut self) {
        if self.created {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Removes scratch directories under `base` whose process (the pid in the name) is gone: a
/// supervisor killed mid-run cannot remove its own.
pub(crate) fn clean_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let owner = name
            .split('-')
            .next()
            .and_then(|p| p.parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw);
        let alive = owner.is_some_and(|p| rustix::process::test_kill_process(p).is_ok());
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
