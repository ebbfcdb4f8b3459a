//! Directory → layer tar diff.
//!
//! [`write_layer`] walks a directory (an overlayfs upper dir after a `RUN`, or a plain
//! directory holding a `COPY` result) and streams it as a tar through the chosen compressor,
//! computing the uncompressed digest (diff ID) and the compressed digest and size in the same
//! pass. Nothing is read whole into memory: file data flows in 1 MiB chunks.
//!
//! The tar is canonical: entries depth-first with each directory's children sorted by name
//! bytes, parents before children; headers normalised (see [`super::header`]); uid, gid,
//! mode (permission, setuid/setgid/sticky bits) and mtime (whole seconds) preserved; names
//! relative without a leading `./`. Files sharing an inode become one file and tar
//! hardlinks to it. Sockets are skipped (tar cannot hold them).
//!
//! With [`SourceKind::Overlay`], overlayfs markers become OCI whiteouts: a 0:0 character
//! device (or an empty file with `*.overlay.whiteout`) named `x` becomes an empty file
//! `.wh.x`, and a directory with `trusted.overlay.opaque=y` (or `user.overlay.opaque=y`) is
//! followed by `<dir>/.wh..wh..opq`. Files overlayfs left as metacopy stubs or directories
//! with redirects are refused: their content is not in the upper dir (mount with
//! `metacopy=off,redirect_dir=off`).

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::compression::{Compression, CompressionError, Encoder};
use crate::digest::{Digest, HashingWriter};
use crate::manifest::Descriptor;

use super::{xattr, OPAQUE_WHITEOUT, WHITEOUT_PREFIX};
use crate::tar_format::write::{self as header, EntryHeader, Kind};

const COPY_BUFFER: usize = 1 << 20;

/// Errors writing a layer. Paths are those on disk.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The directory could not be listed, or an entry could not be inspected.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file's extended attributes could not be read.
    #[error("cannot read extended attributes of {path}: {source}")]
    Xattr {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file changed size while it was being written into the layer.
    #[error("{path} changed while writing the layer: expected {expected} bytes, read {actual}")]
    FileChanged {
        /// The file.
        path: PathBuf,
        /// Size at `lstat` time.
        expected: u64,
        /// Bytes actually read.
        actual: u64,
    },
    /// An overlayfs metacopy stub: the data lives in a lower layer.
    #[error("{path} is an overlayfs metacopy file (mount the overlay with metacopy=off)")]
    OverlayMetacopy {
        /// The file.
        path: PathBuf,
    },
    /// An overlayfs redirected directory: its content lives elsewhere.
    #[error(
        "{path} is an overlayfs redirected directory (mount the overlay with redirect_dir=off)"
    )]
    OverlayRedirect {
        /// The directory.
        path: PathBuf,
    },
    /// The root is not a directory.
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The compressor could not be set up.
    #[error(transparent)]
    Compression(#[from] CompressionError),
    /// Writing the output failed.
    #[error("cannot write layer output: {source}")]
    Output {
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// What kind of directory is being turned into a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceKind {
    /// A plain directory: every entry is content (a 0:0 character device is a device).
    #[default]
    Plain,
    /// An overlayfs upper dir: overlay whiteouts and opaque markers become OCI whiteouts.
    Overlay,
}

/// Which extended attributes go into the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XattrPolicy {
    /// All of them, except overlayfs' private `trusted.overlay.*`/`user.overlay.*` and the
    /// host's `security.selinux` label (what buildah keeps).
    #[default]
    All,
    /// Only `security.capability` (what Docker and BuildKit keep).
    CapabilitiesOnly,
    /// None.
    None,
}

/// How to write a layer.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Compression of the output.
    pub compression: Compression,
    /// Plain directory or overlay upper dir.
    pub source: SourceKind,
    /// `SOURCE_DATE_EPOCH`: mtimes later than this (Unix seconds) are written as it.
    pub mtime_clamp: Option<i64>,
    /// Extended attributes to include.
    pub xattrs: XattrPolicy,
    /// Compression threads (the output does not depend on it).
    pub threads: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            compression: Compression::default(),
            source: SourceKind::default(),
            mtime_clamp: None,
            xattrs: XattrPolicy::default(),
            threads: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// sha256 of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
    /// sha256 of the bytes written to the output (the blob's digest).
    pub digest: Digest,
    /// Bytes written to the output.
    pub size: u64,
    /// The compression used.
    pub compression: Compression,
    /// Number of tar entries (whiteouts included).
    pub entries: u64,
}

impl LayerInfo {
    /// The layer's descriptor with the OCI media type.
    pub fn oci_descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.compression.oci_layer_media_type(),
            self.digest,
            self.size,
        )
    }

    /// The layer's descriptor with the Docker schema 2 media type.
    pub fn docker_descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.compression.docker_layer_media_type(),
            self.digest,
            self.size,
        )
    }
}

type TarOutput<W> = BufWriter<HashingWriter<Encoder<Stored<W>>>>;

/// What reaches the caller's writer, hashed only when it differs from the tar: an
/// uncompressed layer's digest is its diff id, already computed (a second sha256 pass over a
/// 500 MB layer cost ~0.4 CPU-s).
enum Stored<W> {
    Compressed(HashingWriter<W>),
    Tar(W),
}

impl<W: Write> Write for Stored<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stored::Compressed(w) => w.write(buf),
            Stored::Tar(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stored::Compressed(w) => w.flush(),
            Stored::Tar(w) => w.flush(),
        }
    }
}

/// Writes the contents of `dir` (not `dir` itself) as a layer tar into `out`.
///
/// Blocking and CPU-heavy: run it on a blocking thread or rayon. The caller owns `out`
/// (e.g. a temp file it renames into place once the digest is known).
pub fn write_layer<W: Write>(
    dir: &Path,
    options: &WriteOptions,
    out: W,
) -> Result<LayerInfo, WriteError> {
    let meta = fs::symlink_metadata(dir).map_err(|source| WriteError::Read {
        path: dir.to_owned(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(WriteError::NotADirectory {
            path: dir.to_owned(),
        });
    }
    let stored = match options.compression {
        Compression::None => Stored::Tar(out),
        _ => Stored::Compressed(HashingWriter::new(out)),
    };
    let encoder = Encoder::new(stored, options.compression, options.threads)?;
    let tar = BufWriter::with_capacity(256 * 1024, HashingWriter::new(encoder));
    let mut writer = LayerWriter {
        root: dir.to_owned(),
        options,
        out: tar,
        header: Vec::with_capacity(2048),
        buffer: vec![0; COPY_BUFFER],
        inodes: HashMap::new(),
        entries: 0,
    };
    writer.walk()?;
    writer.finish()
}

struct LayerWriter<'a, W: Write> {
    root: PathBuf,
    options: &'a WriteOptions,
    out: TarOutput<W>,
    header: Vec<u8>,
    buffer: Vec<u8>,
    /// (dev, ino) → layer name of the first path seen for that inode.
    inodes: HashMap<(u64, u64), Vec<u8>>,
    entries: u64,
}

/// A directory being listed: its layer name (with trailing `/` unless root) and its
/// remaining children, sorted.
struct Frame {
    name: Vec<u8>,
    children: std::vec::IntoIter<std::ffi::OsString>,
}

impl<W: Write> LayerWriter<'_, W> {
    fn walk(&mut self) -> Result<(), WriteError> {
        let mut stack = vec![Frame {
            name: Vec::new(),
            children: self.list(&self.root.clone())?.into_iter(),
        }];
        while let Some(frame) = stack.last_mut() {
            let Some(child) = frame.children.next() else {
                stack.pop();
                continue;
            };
            let mut name = frame.name.clone();
            name.extend_from_slice(child.as_bytes());
            let path = self.root.join(std::ffi::OsStr::from_bytes(&name));
            let meta = fs::symlink_metadata(&path).map_err(|source| WriteError::Read {
                path: path.clone(),
                source,
            })?;
            if meta.is_dir() {
                name.push(b'/');
                self.write_entry(&path, &name, &meta)?;
                let children = self.list(&path)?;
                stack.push(Frame {
                    name,
                    children: children.into_iter(),
                });
            } else {
                self.write_entry(&path, &name, &meta)?;
            }
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> Result<Vec<std::ffi::OsString>, WriteError> {
        let read = |source| WriteError::Read {
            path: dir.to_owned(),
            source,
        };
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(read)? {
            names.push(entry.map_err(read)?.file_name());
        }
        names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Ok(names)
    }

    fn write_entry(&mut self, path: &Path, name: &[u8], meta: &Metadata) -> Result<(), WriteError> {
        let file_type = meta.file_type();
        let overlay = self.options.source == SourceKind::Overlay;
        if file_type.is_socket() {
            return Ok(());
        }
        if overlay && file_type.is_char_device() && meta.rdev() == 0 {
            return self.write_whiteout(name);
        }
        let mut xattrs = self.read_xattrs(path, meta)?;
        let mut opaque = false;
        if overlay {
            let marker = |suffix: &[u8]| {
                xattrs
                    .iter()
                    .find(|(n, _)| {
                        xattr::OVERLAY_PREFIXES
                            .iter()
                            .any(|p| n.starts_with(p) && &n[p.len()..] == suffix)
                    })
                    .map(|(_, v)| v.clone())
            };
            if marker(b"metacopy").is_some() {
                return Err(WriteError::OverlayMetacopy {
                    path: path.to_owned(),
                });
            }
            if file_type.is_file() && meta.len() == 0 && marker(b"whiteout").is_some() {
                return self.write_whiteout(name);
            }
            if file_type.is_dir() {
                if marker(b"redirect").is_some() {
                    return Err(WriteError::OverlayRedirect {
                        path: path.to_owned(),
                    });
                }
                opaque = marker(b"opaque").as_deref() == Some(b"y");
            }
        }
        xattrs.retain(|(n, _)| self.keep_xattr(n));
        for (n, v) in &mut xattrs {
            if n == xattr::CAPABILITY {
                xattr::normalize_capability(v);
            }
        }

        let mut link_name: Vec<u8> = Vec::new();
        let mut size = 0;
        let kind = if !file_type.is_dir() && meta.nlink() > 1 {
            match self.inodes.get(&(meta.dev(), meta.ino())) {
                Some(first) => {
                    link_name = first.clone();
                    Some(Kind::Hardlink)
                }
                None => {
                    self.inodes.insert((meta.dev(), meta.ino()), name.to_vec());
                    None
                }
            }
        } else {
            None
        };
        let kind = match kind {
            Some(kind) => kind,
            None if file_type.is_dir() => Kind::Directory,
            None if file_type.is_file() => {
                size = meta.len();
                Kind::Regular
            }
            None if file_type.is_symlink() => {
                link_name = fs::read_link(path)
                    .map_err(|source| WriteError::Read {
                        path: path.to_owned(),
                        source,
                    })?
                    .into_os_string()
                    .into_encoded_bytes();
                Kind::Symlink
            }
            None if file_type.is_char_device() => Kind::CharDevice,
            None if file_type.is_block_device() => Kind::BlockDevice,
            None => Kind::Fifo,
        };
        let (device_major, device_minor) = if matches!(kind, Kind::CharDevice | Kind::BlockDevice) {
            (
                rustix::fs::major(meta.rdev()),
                rustix::fs::minor(meta.rdev()),
            )
        } else {
            (0, 0)
        };
        let mut mtime = meta.mtime();
        if let Some(clamp) = self.options.mtime_clamp {
            mtime = mtime.min(clamp);
        }
        let entry = EntryHeader {
            name,
            kind,
            link_name: &link_name,
            mode: meta.mode(),
            uid: meta.uid().into(),
            gid: meta.gid().into(),
            size,
            mtime,
            device_major,
            device_minor,
            xattrs: &xattrs,
        };
        self.emit(&entry)?;
        if kind == Kind::Regular && size > 0 {
            self.copy_file(path, size)?;
        }
        if opaque {
            let mut marker = name.to_vec();
            marker.extend_from_slice(OPAQUE_WHITEOUT.as_bytes());
            self.emit(&marker_header(&marker))?;
        }
        Ok(())
    }

    fn write_whiteout(&mut self, name: &[u8]) -> Result<(), WriteError> {
        let (dir, base) = match name.iter().rposition(|&b| b == b'/') {
            Some(i) => name.split_at(i + 1),
            None => (&b""[..], name),
        };
        let mut whiteout = dir.to_vec();
        whiteout.extend_from_slice(WHITEOUT_PREFIX.as_bytes());
        whiteout.extend_from_slice(base);
        self.emit(&marker_header(&whiteout))
    }

    fn read_xattrs(&self, path: &Path, meta: &Metadata) -> Result<xattr::XattrList, WriteError> {
        let overlay = self.options.source == SourceKind::Overlay;
        if self.options.xattrs == XattrPolicy::None && !overlay {
            return Ok(Vec::new());
        }
        let error = |source| WriteError::Xattr {
            path: path.to_owned(),
            source,
        };
        let names = xattr::list(path).map_err(error)?;
        let mut out = Vec::new();
        for name in names {
            let wanted = self.keep_xattr(&name) || (overlay && xattr::is_overlay_private(&name));
            if !wanted {
                continue;
            }
            // Symlinks only carry trusted.* and security.* attributes; skip reading others.
            if meta.file_type().is_symlink() && name.starts_with(b"user.") {
                continue;
            }
            if let Some(value) = xattr::get(path, &name).map_err(error)? {
                out.push((name, value));
            }
        }
        out.sort();
        Ok(out)
    }

    fn keep_xattr(&self, name: &[u8]) -> bool {
        if xattr::is_overlay_private(name) {
            return false;
        }
        match self.options.xattrs {
            XattrPolicy::All => name != b"security.selinux",
            XattrPolicy::CapabilitiesOnly => name == xattr::CAPABILITY,
            XattrPolicy::None => false,
        }
    }

    fn emit(&mut self, entry: &EntryHeader<'_>) -> Result<(), WriteError> {
        self.header.clear();
        header::encode(entry, &mut self.header);
        self.entries += 1;
        self.out
            .write_all(&self.header)
            .map_err(|source| WriteError::Output { source })
    }

    fn copy_file(&mut self, path: &Path, size: u64) -> Result<(), WriteError> {
        let read_error = |source| WriteError::Read {
            path: path.to_owned(),
            source,
        };
        let mut file = File::options()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
            .map_err(read_error)?;
        let mut remaining = size;
        while remaining > 0 {
            let want = remaining.min(self.buffer.len() as u64) as usize;
            let n = match file.read(&mut self.buffer[..want]) {
                Ok(0) => {
                    return Err(WriteError::FileChanged {
                        path: path.to_owned(),
                        expected: size,
                        actual: size - remaining,
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(e)),
            };
            self.out
                .write_all(&self.buffer[..n])
                .map_err(|source| WriteError::Output { source })?;
            remaining -= n as u64;
        }
        let pad = header::padding(size);
        self.out
            .write_all(&[0u8; 512][..pad])
            .map_err(|source| WriteError::Output { source })
    }

    fn finish(mut self) -> Result<LayerInfo, WriteError> {
        let output = |source| WriteError::Output { source };
        // End of archive: two zero blocks (what Go's archive/tar writes; no record padding).
        self.out.write_all(&[0u8; 1024]).map_err(output)?;
        let tar = self.out.into_inner().map_err(|e| WriteError::Output {
            source: e.into_error(),
        })?;
        let (encoder, diff_id, uncompressed_size) = tar.finish();
        let (mut out, digest, size) = match encoder.finish().map_err(output)? {
            Stored::Compressed(hashed) => hashed.finish(),
            Stored::Tar(out) => (out, diff_id, uncompressed_size),
        };
        out.flush().map_err(output)?;
        Ok(LayerInfo {
            diff_id,
            uncompressed_size,
            digest,
            size,
            compression: self.options.compression,
            entries: self.entries,
        })
    }
}

/// Header of an empty marker file (whiteout or opaque marker): mode 0, owner 0:0, mtime 0,
/// so the same deletion always encodes to the same bytes.
fn marker_header(name: &[u8]) -> EntryHeader<'_> {
    EntryHeader {
        name,
        kind: Kind::Regular,
        link_name: b"",
        mode: 0,
        uid: 0,
        gid: 0,
        size: 0,
        mtime: 0,
        device_major: 0,
        device_minor: 0,
        xattrs: &[],
    }
}
