//! File ops: BuildKit's file actions (COPY/ADD, mkdir, mkfile, rm) applied to a new
//! snapshot diff over its parent's snapshot chain.
//!
//! Role: [`apply`] runs a [`FileOp`]'s actions in order. The base (input 0, or scratch) is
//! read through a [`LayeredView`] of its diff directories; everything written goes into
//! the new diff, as overlayfs would have written it through a mount: changed entries,
//! copied-up parents, whiteouts for deletions, opaque markers for replaced directories.
//! The result is right both as an overlay upper/lower dir and read back through
//! [`LayeredView::chain`].
//!
//! Main types: [`SourceFs`] (what a copy reads: a [`LayeredView`] for stages and images,
//! the `context` module's view for the build context), [`LayeredView`], [`Stat`],
//! [`FileError`].
//!
//! Files: `layered.rs` (the read view), `diff.rs` (the writer), `whiteout.rs` and
//! `xattr.rs` (on-disk markers and attributes), `resolve.rs` (symlinks confined to a root),
//! `wildcard.rs` (Go's `filepath.Match`), `copy.rs`, `archive.rs` (ADD of local archives),
//! `mkdir.rs`, `mkfile.rs`, `rm.rs`, `owner.rs` (`--chown` names), `chmod.rs` (`--chmod`).
//!
//! Key decision: the file op never mounts anything. Overlay's lookup rules are reproduced
//! in user space, so the worker needs no mount for COPY, and no path — source, destination
//! or archive entry — is ever resolved on the host: symlinks resolve inside the view they
//! belong to, and writes only create entries under directories of the diff itself.

pub(crate) mod archive;
mod chmod;
mod copy;
mod diff;
mod error;
mod layered;
mod mkdir;
mod mkfile;
mod owner;
mod path;
mod resolve;
mod rm;
mod source;
mod whiteout;
mod wildcard;
mod xattr;

use std::path::{Path, PathBuf};

use strata_solver::op::{FileAction, FileOp};

pub use error::FileError;
pub use layered::LayeredView;
pub use source::{FileKind, SourceFs, Stat, Timespec, Xattr};

/// Applies `op` to the empty diff directory `diff`, stacked on `lowerdirs` (the base
/// snapshot's diff directories, nearest first; ignored when the op has no base).
///
/// `inputs` are the op's inputs by index, as `FileAction::Copy::source_input` names them
/// (input 0 is the base when `op.has_base`; a copy from it reads the base as it was).
/// On error the diff is left half-written: the caller discards the prepared snapshot.
pub fn apply(
    op: &FileOp,
    diff: &Path,
    lowerdirs: &[PathBuf],
    inputs: &[&dyn SourceFs],
) -> Result<(), FileError> {
    let lower = if op.has_base {
        LayeredView::chain(lowerdirs.iter().cloned())
    } else {
        LayeredView::scratch()
    };
    let mut dest = diff::Diff::new(diff.to_path_buf(), lower)?;
    for action in &op.actions {
        match action {
            FileAction::Copy {
                source_input,
                src,
                dest: to,
                owner,
                chmod,
                follow_symlinks,
                dir_contents_only,
                allow_wildcard,
                allow_empty_wildcard,
                exclude,
                parents,
                unpack,
                create_dest_path,
                mtime,
            } => {
                let source = *inputs.get(*source_input).ok_or(FileError::MissingInput {
                    index: *source_input,
                })?;
                let args = copy::CopyArgs {
                    src,
                    dest: to,
                    owner: owner.as_ref(),
                    chmod: chmod.as_ref(),
                    follow_symlinks: *follow_symlinks,
                    dir_contents_only: *dir_contents_only,
                    allow_wildcard: *allow_wildcard,
                    allow_empty_wildcard: *allow_empty_wildcard,
                    exclude,
                    parents: *parents,
                    unpack: *unpack,
                    create_dest_path: *create_dest_path,
                    mtime: *mtime,
                };
                copy::copy(&mut dest, source, args)?;
            }
            FileAction::Mkdir {
                path,
                mode,
                make_parents,
                owner,
                mtime,
            } => mkdir::mkdir(
                &mut dest,
                path,
                *mode,
                *make_parents,
                owner.as_ref(),
                *mtime,
            )?,
            FileAction::Mkfile {
                path,
                data,
                mode,
                owner,
            } => mkfile::mkfile(&mut dest, path, data, *mode, owner.as_ref())?,
            FileAction::Rm {
                path,
                allow_not_found,
                allow_wildcard,
            } => rm::rm(&mut dest, path, *allow_not_found, *allow_wildcard)?,
        }
    }
    dest.finish()
}
