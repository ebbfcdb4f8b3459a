//! Follow paths: the frontend's resolver ([`resolve_follow_paths`]) asking the live
//! context about symlinks.
//!
//! Role: implements [`SymlinkSource`] over the context directory, so a context vertex's
//! `follow_paths` turn into extra include patterns exactly as fsutil computes them (the
//! link itself, and the context paths its target leads to). Main item: [`follow_targets`].
//!
//! Key decision: answers are read with [`open_beneath`], never following a link, so asking
//! about a path under a swapped-in symlink answers "no symlink here" rather than reading
//! the host. Targets are returned raw; the resolver roots them in the context, which only
//! widens the selection (and the checksum) — whether the link may be *read* through is
//! decided later by [`resolve`](super::confine::resolve).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{Dir, OFlags};
use strata_frontend::ignore::{resolve_follow_paths, SymlinkSource};

use super::confine::{fd_kind, fd_link_target, is_symlink_or_file_on_the_way, open_beneath};
use super::entry::EntryKind;
use super::error::ContextError;

/// The include patterns fsutil adds for `follow_paths`: `None` when the context root is
/// among them (the include list is then left as it is).
pub(crate) fn follow_targets(
    root: BorrowedFd<'_>,
    follow_paths: &[String],
) -> Result<Option<Vec<String>>, ContextError> {
    if follow_paths.is_empty() {
        return Ok(None);
    }
    let mut source = LiveSymlinks { root };
    Ok(resolve_follow_paths(follow_paths, &mut source)?)
}

struct LiveSymlinks<'a> {
    root: BorrowedFd<'a>,
}

/// "Nothing there" for the resolver: missing, or under something that is not a directory.
fn absent(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound || is_symlink_or_file_on_the_way(err)
}

impl SymlinkSource for LiveSymlinks<'_> {
    fn read_link(&mut self, path: &str) -> io::Result<Option<String>> {
        let fd = match open_beneath(self.root, path, OFlags::PATH) {
            Ok(fd) => fd,
            Err(e) if absent(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        if fd_kind(fd.as_fd())? != EntryKind::Symlink {
            return Ok(None);
        }
        let target = fd_link_target(fd.as_fd())?;
        Ok(Some(String::from_utf8_lossy(&target).into_owned()))
    }

    fn read_dir(&mut self, dir: &str) -> io::Result<Option<Vec<String>>> {
        let fd = match open_beneath(self.root, dir, OFlags::RDONLY | OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if absent(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        let mut entries = Dir::new(fd)?;
        while let Some(entry) = entries.read() {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            names.push(String::from_utf8_lossy(name).into_owned());
        }
        Ok(Some(names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn targets_of_live_symlinks() {
        let dir = std::env::temp_dir().join(format!("strata-follow-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("real/dir")).unwrap();
        std::os::unix::fs::symlink("real/dir", dir.join("link")).unwrap();
        std::os::unix::fs::symlink("/elsewhere/t", dir.join("abs")).unwrap();
        std::os::unix::fs::symlink("..", dir.join("up")).unwrap();
        let root = rustix::fs::open(
            &dir,
            OFlags::RDONLY | OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        let follow = |paths: &[&str]| {
            let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
            follow_targets(root.as_fd(), &paths).unwrap()
        };
        assert_eq!(
            follow(&["link/x", "plain"]),
            Some(["link", "plain", "real/dir/x"].map(String::from).to_vec())
        );
        // Absolute targets are rooted in the context (fsutil); reading through them is
        // refused later, by resolution.
        assert_eq!(
            follow(&["abs"]),
            Some(["abs", "elsewhere/t"].map(String::from).to_vec())
        );
        // Through a regular file or a missing path: nothing to follow.
        assert_eq!(
            follow(&["link/x/y"]),
            Some(vec!["link".into(), "real/dir/x/y".into()])
        );
        assert_eq!(follow(&[]), None);
        // A link to the parent climbs to the root: the include list stays as it is.
        assert_eq!(follow(&["up"]), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
