//! Path rules of lowering: Go's `path` functions and BuildKit's normalizations of COPY/ADD
//! sources and destinations, WORKDIR and mount targets (Linux semantics only).

/// Go's `path.Clean`.
pub fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

/// Go's `path.Join`: non-empty elements joined with `/`, then cleaned (`""` when all are
/// empty).
pub fn join(elements: &[&str]) -> String {
    let non_empty: Vec<&str> = elements.iter().copied().filter(|e| !e.is_empty()).collect();
    if non_empty.is_empty() {
        return String::new();
    }
    clean(&non_empty.join("/"))
}

/// Go's `path.Base`.
pub fn base(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".to_string();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

/// Re-applies a trailing `/` or `/.` of `original` to `cleaned`, as BuildKit's
/// `keepSlash` does.
fn keep_slash(original: &str, mut cleaned: String) -> String {
    if original.ends_with('/') && !cleaned.ends_with('/') {
        cleaned.push('/');
    } else if original.ends_with("/.") {
        if cleaned != "/" {
            cleaned.push('/');
        }
        cleaned.push('.');
    }
    cleaned
}

/// BuildKit's `system.NormalizePath` for Linux: a relative `new` is joined onto `parent`
/// (cleaned); an absolute one is kept as written.
pub fn normalize_path(parent: &str, new: &str, keep: bool) -> String {
    let parent = if parent.is_empty() { "/" } else { parent };
    let parent = if parent.starts_with('/') {
        parent.to_string()
    } else {
        join(&["/", parent])
    };
    let mut path = if new.is_empty() {
        parent.clone()
    } else {
        new.to_string()
    };
    if !path.starts_with('/') {
        path = join(&[&parent, &path]);
    }
    if keep {
        keep_slash(new, path)
    } else {
        path
    }
}

/// The `normalizePath` of BuildKit's LLB file ops, applied when an action is marshalled:
/// cleaned, joined onto `parent` when relative.
pub fn llb_normalize(parent: &str, p: &str, keep: bool) -> String {
    let mut cleaned = clean(p);
    if !cleaned.starts_with('/') {
        cleaned = join(&["/", parent, &cleaned]);
    }
    if keep {
        keep_slash(p, cleaned)
    } else {
        cleaned
    }
}

/// A COPY/ADD destination: relative to the working directory, `""` and `.` meaning the
/// working directory itself (as a directory: `/app/`), a trailing `/` or `/.` kept
/// ("copy into this directory").
pub fn copy_dest(workdir: &str, dest: &str) -> String {
    let dest = if dest.is_empty() || dest == "." {
        "./"
    } else {
        dest
    };
    let relative = normalize_path(workdir, dest, true);
    llb_normalize("/", &relative, true)
}

/// A COPY/ADD source path: always from the root of the source, cleaned
/// (`system.NormalizePath("/", src)` then the file op's `path.Clean`).
pub fn copy_source(src: &str) -> String {
    llb_normalize("/", &normalize_path("/", src, false), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_path_functions() {
        assert_eq!(clean(""), ".");
        assert_eq!(clean("a/../.."), "..");
        assert_eq!(clean("/a/./b/../../.."), "/");
        assert_eq!(clean("a//b/"), "a/b");
        assert_eq!(join(&["/", "app", "../x"]), "/x");
        assert_eq!(join(&["", ""]), "");
        assert_eq!(base("/a/b/"), "b");
        assert_eq!(base("/"), "/");
        assert_eq!(base(""), ".");
    }

    #[test]
    fn destinations() {
        // BuildKit's trailing-slash rules: a trailing `/` means "into this directory".
        let cases = [
            ("/", "/foo", "/foo"),
            ("/", "/foo/", "/foo/"),
            ("/app", "foo", "/app/foo"),
            ("/app", "foo/", "/app/foo/"),
            ("/app", ".", "/app/"),
            ("/app", "", "/app/"),
            ("/app", "./", "/app/"),
            ("/app", "../x", "/x"),
            ("/app", "sub/.", "/app/sub/."),
            ("/", ".", "/"),
            ("/", "/.", "/."),
            ("/a", "/b//c/../d/", "/b/d/"),
            ("", "rel", "/rel"),
        ];
        for (workdir, dest, want) in cases {
            assert_eq!(copy_dest(workdir, dest), want, "{workdir} + {dest}");
        }
    }

    #[test]
    fn sources() {
        assert_eq!(copy_source("foo"), "/foo");
        assert_eq!(copy_source("./dir/"), "/dir");
        assert_eq!(copy_source("../../etc/passwd"), "/etc/passwd");
        assert_eq!(copy_source("."), "/");
        assert_eq!(copy_source("/abs//x/."), "/abs/x");
        assert_eq!(copy_source("*.go"), "/*.go");
    }
}
