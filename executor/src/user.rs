//! Resolving `USER` to numeric ids: [`resolve`] → [`ExecUser`].
//!
//! Role: turns `name`, `uid`, `name:group`, `uid:gid` (and mixes) into uid, gid, supplementary
//! groups and home directory, from the rootfs's `/etc/passwd` and `/etc/group`, with Docker's
//! (runc's `GetExecUser`) rules: the first matching entry wins; a numeric user or group without
//! an entry is taken as is; a named one without an entry is an error; supplementary groups are
//! the groups listing the user by name, and only when no group was given.
//!
//! Key decision: this module only parses text. Reading the files is the backend's job (the
//! native sandbox reads them through the sandbox's own root, so symlinks resolve inside it).

/// Numeric identity of the process to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids (may be empty).
    pub groups: Vec<u32>,
    /// Home directory (`/` when the user has no passwd entry).
    pub home: String,
}

/// Why a user could not be resolved; texts are runc's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    /// A user name with no passwd entry.
    #[error("unable to find user {name}: no matching entries in passwd file")]
    NoUser {
        /// The name looked up.
        name: String,
    },
    /// A group name with no group entry.
    #[error("unable to find group {name}: no matching entries in group file")]
    NoGroup {
        /// The name looked up.
        name: String,
    },
    /// A numeric id out of range.
    #[error("user or group id {id} out of range")]
    Range {
        /// The text given.
        id: String,
    },
    /// More supplementary groups than the kernel takes.
    #[error("user {name} has {count} supplementary groups, more than the {max} allowed")]
    TooManyGroups {
        /// User name.
        name: String,
        /// Groups found.
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// The most supplementary groups passed on (the kernel's `NGROUPS_MAX`).
pub const MAX_GROUPS: usize = 65536;

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: &'a str,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        // name:password:uid:gid:gecos:home:shell
        let mut f = line.split(':');
        let name = f.next()?;
        let _pw = f.next();
        let uid = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let gid = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let _gecos = f.next();
        let home = f.next().unwrap_or("");
        Some(PasswdEntry {
            name,
            uid,
            gid,
            home,
        })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        // name:password:gid:member,member
        let mut f = line.split(':');
        let name = f.next()?;
        let _pw = f.next();
        let gid = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let members = f.next().unwrap_or("");
        Some(GroupEntry { name, gid, members })
    })
}

fn parse_id(s: &str) -> Option<Result<u32, UserError>> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // runc accepts 0..=2^31-1.
    Some(
        s.parse::<u32>()
            .ok()
            .filter(|v| *v <= i32::MAX as u32)
            .ok_or_else(|| UserError::Range { id: s.to_owned() }),
    )
}

/// Resolves `spec` (`user[:group]`, empty meaning root) against the texts of `/etc/passwd`
/// and `/etc/group` (empty when a file is missing).
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<ExecUser, UserError> {
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_arg = if user_arg.is_empty() { "0" } else { user_arg };
    let user_num = parse_id(user_arg).transpose()?;

    let mut out = ExecUser {
        uid: 0,
        gid: 0,
        groups: Vec::new(),
        home: "/".to_owned(),
    };
    let matched =
        passwd_entries(passwd).find(|e| e.name == user_arg || user_num.is_some_and(|n| n == e.uid));
    let matched_name = match &matched {
        Some(e) => {
            out.uid = e.uid;
            out.gid = e.gid;
            out.home = e.home.to_owned();
            Some(e.name)
        }
        None => match user_num {
            Some(n) => {
                out.uid = n;
                None
            }
            None => {
                return Err(UserError::NoUser {
                    name: user_arg.to_owned(),
                })
            }
        },
    };

    match group_arg {
        Some(g) if !g.is_empty() => {
            let g_num = parse_id(g).transpose()?;
            match group_entries(group).find(|e| e.name == g || g_num.is_some_and(|n| n == e.gid)) {
                Some(e) => out.gid = e.gid,
                None => match g_num {
                    Some(n) => out.gid = n,
                    None => {
                        return Err(UserError::NoGroup { name: g.to_owned() });
                    }
                },
            }
        }
        _ => {
            if let Some(name) = matched_name {
                out.groups = group_entries(group)
                    .filter(|e| e.members.split(',').any(|m| m.trim() == name))
                    .map(|e| e.gid)
                    .collect();
                if out.groups.len() > MAX_GROUPS {
                    return Err(UserError::TooManyGroups {
                        name: name.to_owned(),
                        count: out.groups.len(),
                        max: MAX_GROUPS,
                    });
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          app:x:1000:1000:app:/home/app:/bin/sh\n\
                          nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:root,app\napp:x:1000:\naudio:x:29:app\n\
                         nogroup:x:65534:\n";

    fn r(spec: &str) -> Result<ExecUser, UserError> {
        resolve(spec, PASSWD, GROUP)
    }

    #[test]
    fn root_by_default() {
        let u = r("").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        assert_eq!(u.groups, [10]);
    }

    #[test]
    fn by_name_with_supplementary_groups() {
        let u = r("app").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.groups, [10, 29]);
        assert_eq!(u.home, "/home/app");
    }

    #[test]
    fn numeric_matches_entry() {
        let u = r("1000").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.groups, [10, 29]);
    }

    #[test]
    fn explicit_group_drops_supplementary() {
        let u = r("app:audio").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 29));
        assert!(u.groups.is_empty());
        let u = r("1234:5678").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1234, 5678, "/"));
    }

    #[test]
    fn unknown_names() {
        assert_eq!(
            r("ghost").unwrap_err().to_string(),
            "unable to find user ghost: no matching entries in passwd file"
        );
        assert_eq!(
            r("app:ghosts").unwrap_err().to_string(),
            "unable to find group ghosts: no matching entries in group file"
        );
        assert!(matches!(r("99999999999"), Err(UserError::Range { .. })));
    }

    #[test]
    fn missing_files() {
        let u = resolve("42:7", "", "").unwrap();
        assert_eq!((u.uid, u.gid), (42, 7));
        assert!(resolve("app", "", "").is_err());
    }
}
