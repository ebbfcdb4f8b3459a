//! Whether a string is a valid image reference, as `reference.ParseNormalizedNamed` from
//! `github.com/distribution/reference` decides (InvalidDefaultArgInFrom asks only that).
//!
//! The grammar: `[domain[:port]/]path[:tag][@digest]`, path components of lower-case letters
//! and digits joined by `.`, `_`, `__` or runs of `-`; a short name gains `docker.io/library/`.

/// Longest name (domain and path) a reference may have.
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// True when `s` parses as a normalized named reference.
pub(crate) fn is_valid(s: &str) -> bool {
    if s.len() == 64 && s.bytes().all(|b| matches!(b, b'a'..=b'f' | b'0'..=b'9')) {
        return false;
    }
    let (domain, remainder) = split_docker_domain(s);
    let remote = remainder.split(':').next().unwrap_or_default();
    if remote.to_lowercase() != remote {
        return false;
    }
    parse(&format!("{domain}/{remainder}"))
}

/// `splitDockerDomain`: the first path element is a domain if it looks like one.
fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => ("docker.io".to_string(), name.to_string()),
    };
    if domain == "index.docker.io" {
        domain = "docker.io".to_string();
    }
    if domain == "docker.io" && !remainder.contains('/') {
        remainder = format!("library/{remainder}");
    }
    (domain, remainder)
}

/// The anchored reference regexp: `name(:tag)?(@digest)?`, plus the length and digest checks.
fn parse(s: &str) -> bool {
    let (rest, digest) = match s.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (s, None),
    };
    if digest.is_some_and(|d| !is_digest(d)) {
        return false;
    }
    // A `:` after the last `/` can only start the tag: a name's only `:` is a port, which a
    // `/` follows.
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if tag.is_some_and(|t| !is_tag(t)) {
        return false;
    }
    is_name(name) && name.len() <= NAME_TOTAL_LENGTH_MAX
}

/// `[\w][\w.-]{0,127}`.
fn is_tag(t: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = t.chars();
    chars.next().is_some_and(word)
        && t.len() <= 128
        && chars.all(|c| word(c) || c == '.' || c == '-')
}

/// `(domainAndPort/)? pathComponent(/pathComponent)*`.
fn is_name(name: &str) -> bool {
    if is_remote_name(name) {
        return true;
    }
    match name.split_once('/') {
        Some((domain, path)) => is_domain_and_port(domain) && is_remote_name(path),
        None => false,
    }
}

fn is_remote_name(s: &str) -> bool {
    s.split('/').all(is_path_component)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn is_path_component(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = s.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if bytes.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// `host(:port)?` with host a DNS name or a bracketed IPv6 address.
fn is_domain_and_port(s: &str) -> bool {
    let (host, port) = if s.starts_with('[') {
        match s.find(']') {
            Some(end) => {
                let inner = &s[1..end];
                if inner.is_empty() || !inner.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
                    return false;
                }
                (None, &s[end + 1..])
            }
            None => return false,
        }
    } else {
        match s.split_once(':') {
            Some((host, _)) => (Some(host), &s[host.len()..]),
            None => (Some(s), ""),
        }
    };
    if host.is_some_and(|h| !h.split('.').all(is_domain_component)) {
        return false;
    }
    match port.strip_prefix(':') {
        Some(digits) => !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
        None => port.is_empty(),
    }
}

/// `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_domain_component(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        }
        _ => false,
    }
}

/// A digest of an algorithm Go's `go-digest` knows, with its exact hex length.
fn is_digest(d: &str) -> bool {
    let Some((algorithm, hex)) = d.split_once(':') else {
        return false;
    };
    let len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == len && hex.bytes().all(|b| matches!(b, b'a'..=b'f' | b'0'..=b'9'))
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn valid_references() {
        for s in [
            "busybox",
            "busybox:latest",
            "library/busybox:1.36-musl",
            "docker.io/library/busybox",
            "localhost:5000/a/b:c",
            "localhost/foo",
            "Registry.Example.com/foo/bar",
            "[::1]:5000/foo",
            "a__b/c-----d/e.f_g",
            "scratch",
            "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(is_valid(s), "{s}");
        }
    }

    #[test]
    fn invalid_references() {
        for s in [
            "",
            "busybox:",
            "Builder",
            "busy$box",
            "foo/Bar",
            "a___b",
            "a._b",
            "-a",
            "a-",
            "foo:bar:baz",
            "foo@sha256:abc",
            "foo@md5:0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "localhost:/foo",
            "[zz]/foo",
            "busybox:@bogus",
        ] {
            assert!(!is_valid(s), "{s}");
        }
        assert!(!is_valid(&"a".repeat(300)));
        assert!(!is_valid(&format!("busybox:{}", "t".repeat(129))));
    }
}
