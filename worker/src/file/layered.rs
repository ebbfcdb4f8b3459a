//! The read view: a chain of snapshot diff directories seen as one filesystem, in user
//! space, with overlayfs' rules — no mount needed (mounts are the executor's).
//!
//! Main type: [`LayeredView`], built three ways: [`LayeredView::chain`] (snapshot diffs,
//! nearest first, as `Snapshots::lowerdirs` lists them), [`LayeredView::plain`] (one plain
//! directory, no overlay markers interpreted) and [`LayeredView::scratch`] (empty). It
//! implements [`SourceFs`], so it is the source of `COPY --from=<stage>`, and it is the
//! lower part of the destination a file op writes over (`diff.rs`).
//!
//! Rules, as overlayfs applies them: a name is looked up from the nearest layer down; a
//! whiteout (0:0 character device) ends the lookup as "missing"; a non-directory ends it as
//! found; directories merge with the same directory in further layers until one is opaque
//! or a layer has a non-directory there. Layer roots always merge (the kernel ignores
//! opaque markers on them). A directory's metadata is its nearest layer's.
//!
//! Key decision: the view is immutable, so the merged layer set of each directory is
//! computed once and cached; a lookup then costs one `lstat` per layer holding the parent.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::path::parent;
use super::source::{host_lstat, FileKind, SourceFs, Stat, Xattr};
use super::{whiteout, xattr};

/// Indexes of the layers a directory is merged from, nearest first.
pub(crate) type Layers = Arc<[u16]>;

/// A read-only view of a stack of directories (see the module docs).
#[derive(Debug)]
pub struct LayeredView {
    layers: Vec<PathBuf>,
    /// Whether overlay markers (whiteouts, opaque directories) are interpreted.
    overlay: bool,
    /// Merged layer sets of directories already looked up.
    dirs: Mutex<HashMap<PathBuf, Layers>>,
}

/// An entry found in a [`LayeredView`].
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// The nearest layer holding it (for a directory: whose metadata it shows).
    pub layer: usize,
    /// Its metadata.
    pub stat: Stat,
    /// For a directory, the layers it is merged from.
    pub dir_layers: Option<Layers>,
}

impl LayeredView {
    /// The empty filesystem (`FROM scratch`).
    pub fn scratch() -> LayeredView {
        LayeredView::new(Vec::new(), false)
    }

    /// One plain directory, read as is: character devices are devices, not whiteouts.
    pub fn plain(dir: impl Into<PathBuf>) -> LayeredView {
        LayeredView::new(vec![dir.into()], false)
    }

    /// A snapshot chain: its diff directories, nearest first (overlay `lowerdir=` order).
    pub fn chain<I>(lowerdirs: I) -> LayeredView
    where
        I: IntoIterator,
        I::Item: Into<PathBuf>,
    {
        LayeredView::new(lowerdirs.into_iter().map(Into::into).collect(), true)
    }

    fn new(layers: Vec<PathBuf>, overlay: bool) -> LayeredView {
        assert!(layers.len() <= usize::from(u16::MAX), "too many layers");
        LayeredView {
            layers,
            overlay,
            dirs: Mutex::new(HashMap::new()),
        }
    }

    /// The directories stacked, nearest first.
    pub fn layers(&self) -> &[PathBuf] {
        &self.layers
    }

    /// The host path of `path` in layer `layer`. `path` is relative to the view's root; a
    /// leading `/` and `.` are ignored and `..` stops at the root, so no path given here can
    /// name anything outside the layer (`Path::join` of an absolute path would replace the
    /// layer directory with the host's root).
    pub(crate) fn host(&self, layer: usize, path: &Path) -> PathBuf {
        use std::path::Component;
        let mut host = self.layers[layer].clone();
        let base = host.components().count();
        for component in path.components() {
            match component {
                Component::Normal(name) => host.push(name),
                Component::ParentDir if host.components().count() > base => {
                    host.pop();
                }
                _ => {}
            }
        }
        host
    }

    /// The layers the root merges (`None` for scratch).
    pub(crate) fn root_layers(&self) -> Option<Layers> {
        if self.layers.is_empty() {
            return None;
        }
        Some((0..self.layers.len()).map(|i| i as u16).collect())
    }

    /// Looks `path` up among the layers its parent directory is merged from.
    pub(crate) fn lookup_in(
        &self,
        parent_layers: &[u16],
        path: &Path,
    ) -> io::Result<Option<Found>> {
        let mut found: Option<Found> = None;
        let mut merged: Vec<u16> = Vec::new();
        for &layer in parent_layers {
            let host = self.host(usize::from(layer), path);
            let stat = match host_lstat(&host) {
                Ok(Some(stat)) => stat,
                Ok(None) => continue,
                // The parent is a directory in this layer, so this is a race or a broken
                // layer; treat the name as absent there.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => {
                    continue
                }
                Err(e) => return Err(e),
            };
            if self.overlay && stat.is_whiteout() {
                break;
            }
            if stat.kind != FileKind::Dir {
                if found.is_none() {
                    return Ok(Some(Found {
                        layer: usize::from(layer),
                        stat,
                        dir_layers: None,
                    }));
                }
                break;
            }
            if found.is_none() {
                found = Some(Found {
                    layer: usize::from(layer),
                    stat,
                    dir_layers: None,
                });
            }
            merged.push(layer);
            if self.overlay && whiteout::is_opaque(&host)? {
                break;
            }
        }
        Ok(found.map(|mut f| {
            f.dir_layers = Some(merged.into());
            f
        }))
    }

    /// Looks `path` up from the root.
    pub(crate) fn lookup(&self, path: &Path) -> io::Result<Option<Found>> {
        if self.layers.is_empty() {
            return Ok(None);
        }
        if path.as_os_str().is_empty() {
            let stat = host_lstat(&self.layers[0])?.ok_or_else(|| not_found(path))?;
            return Ok(Some(Found {
                layer: 0,
                stat,
                dir_layers: self.root_layers(),
            }));
        }
        if self.layers.len() == 1 {
            // One layer: nothing to merge, one lstat (the kernel reports a non-directory
            // parent as ENOTDIR; a whiteout parent is a device, so the same).
            let stat = host_lstat(&self.host(0, path))?;
            return Ok(stat
                .filter(|s| !(self.overlay && s.is_whiteout()))
                .map(|stat| Found {
                    layer: 0,
                    stat,
                    dir_layers: (stat.kind == FileKind::Dir).then(|| Arc::from([0u16])),
                }));
        }
        let parent_layers = self.dir_layers(parent(path))?;
        self.lookup_in(&parent_layers, path)
    }

    /// The merged layers of directory `path`: an error `NotFound` when it is missing and
    /// `NotADirectory` when it (or an ancestor) is not a directory.
    fn dir_layers(&self, path: &Path) -> io::Result<Layers> {
        if path.as_os_str().is_empty() {
            return self.root_layers().ok_or_else(|| not_found(path));
        }
        if let Some(layers) = self.dirs.lock().map_err(poisoned)?.get(path) {
            return Ok(layers.clone());
        }
        let parent_layers = self.dir_layers(parent(path))?;
        match self.lookup_in(&parent_layers, path)? {
            Some(Found {
                dir_layers: Some(layers),
                ..
            }) => {
                self.dirs
                    .lock()
                    .map_err(poisoned)?
                    .insert(path.to_path_buf(), layers.clone());
                Ok(layers)
            }
            Some(_) => Err(io::Error::from(rustix::io::Errno::NOTDIR)),
            None => Err(not_found(path)),
        }
    }

    /// Names in the directory merged from `layers` at `path`, whiteouts applied, sorted.
    pub(crate) fn read_dir_in(&self, layers: &[u16], path: &Path) -> io::Result<Vec<OsString>> {
        let mut seen: HashMap<OsString, bool> = HashMap::new();
        for &layer in layers {
            let host = self.host(usize::from(layer), path);
            for entry in std::fs::read_dir(&host)? {
                let entry = entry?;
                let name = entry.file_name();
                if seen.contains_key(&name) {
                    continue;
                }
                let mut visible = true;
                if self.overlay && entry.file_type()?.is_char_device() {
                    visible = !host_lstat(&entry.path())?.is_some_and(|s| s.is_whiteout());
                }
                seen.insert(name, visible);
            }
        }
        let mut names: Vec<OsString> = seen
            .into_iter()
            .filter_map(|(name, visible)| visible.then_some(name))
            .collect();
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Ok(names)
    }

    fn found(&self, path: &Path) -> io::Result<Found> {
        self.lookup(path)?.ok_or_else(|| not_found(path))
    }

    /// The host path of the visible entry at `path`. With one layer there is nothing to
    /// look up: the caller names entries it has seen, and what the layer holds is what
    /// the view shows (a whiteout cannot be opened or read as a link).
    fn visible(&self, path: &Path) -> io::Result<PathBuf> {
        if self.layers.len() == 1 {
            return Ok(self.host(0, path));
        }
        let found = self.found(path)?;
        Ok(self.host(found.layer, path))
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: not found", super::path::display(path)),
    )
}

fn poisoned<T>(_: T) -> io::Error {
    io::Error::other("layered view cache lock poisoned")
}

impl SourceFs for LayeredView {
    fn lstat(&self, path: &Path) -> io::Result<Option<Stat>> {
        match self.lookup(path) {
            Ok(found) => Ok(found.map(|f| f.stat)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let found = self.found(path)?;
        match &found.dir_layers {
            Some(layers) => self.read_dir_in(layers, path),
            None => Err(io::Error::from(rustix::io::Errno::NOTDIR)),
        }
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::read_link(self.visible(path)?)
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(self.visible(path)?)
    }

    fn xattrs(&self, path: &Path) -> io::Result<Vec<Xattr>> {
        xattr::read_content(&self.visible(path)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_paths_never_leave_the_layer() {
        let view = LayeredView::chain(["/store/snapshots/a/diff"]);
        let layer = Path::new("/store/snapshots/a/diff");
        for (path, want) in [
            ("", ""),
            ("etc/passwd", "etc/passwd"),
            ("/etc/passwd", "etc/passwd"),
            ("./etc/../etc/passwd", "etc/passwd"),
            ("../../../../proc/self", "proc/self"),
            ("/..", ""),
        ] {
            assert_eq!(view.host(0, Path::new(path)), layer.join(want), "{path:?}");
        }
    }
}
