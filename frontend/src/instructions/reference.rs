//! Image references (`alpine`, `ghcr.io/org/app:1.2@sha256:…`) checked and normalised as
//! `distribution/reference.ParseNormalizedNamed` does, which BuildKit applies to every base
//! image and `--from` image before resolving it.
//!
//! Grammar (from the reference package):
//! `reference := name [":" tag] ["@" digest]`, `name := [domain "/"] path`,
//! `domain := host [":" port]`, path components `[a-z0-9]+` joined by `.`, `_`, `__` or
//! runs of `-`, tag `[\w][\w.-]{0,127}`.

use super::digest::validate_digest;

const MAX_NAME_LENGTH: usize = 255;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    /// Registry host (`docker.io` for Docker Hub).
    pub domain: String,
    /// Repository path (`library/alpine`).
    pub path: String,
    /// Tag, if given.
    pub tag: Option<String>,
    /// Digest, if given.
    pub digest: Option<String>,
}

impl ImageReference {
    /// The full form, with `:latest` added when neither tag nor digest is given (BuildKit's
    /// `TagNameOnly`): `docker.io/library/alpine:latest`.
    pub fn to_tagged_string(&self) -> String {
        let mut out = format!("{}/{}", self.domain, self.path);
        match (&self.tag, &self.digest) {
            (None, None) => out.push_str(":latest"),
            (tag, digest) => {
                if let Some(t) = tag {
                    out.push(':');
                    out.push_str(t);
                }
                if let Some(d) = digest {
                    out.push('@');
                    out.push_str(d);
                }
            }
        }
        out
    }
}

/// `ParseNormalizedNamed`: validates `s` and fills in Docker Hub's defaults.
/// Errors are the package's texts.
pub fn parse_image_reference(s: &str) -> Result<ImageReference, String> {
    if s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
        ));
    }
    let (domain, remainder) = split_docker_domain(s);
    let remote = remainder.split(':').next().unwrap_or("");
    if remote.to_lowercase() != remote {
        return Err(format!(
            "invalid reference format: repository name ({remote}) must be lowercase"
        ));
    }
    parse(&format!("{domain}/{remainder}"))
}

fn split_docker_domain(name: &str) -> (String, String) {
    let Some((maybe_domain, maybe_remote)) = name.split_once('/') else {
        return ("docker.io".to_string(), format!("library/{name}"));
    };
    let (domain, remote) = if maybe_domain == "index.docker.io" {
        ("docker.io".to_string(), maybe_remote.to_string())
    } else if maybe_domain == "localhost"
        || maybe_domain.contains(['.', ':'])
        || maybe_domain.to_lowercase() != maybe_domain
    {
        (maybe_domain.to_string(), maybe_remote.to_string())
    } else {
        ("docker.io".to_string(), name.to_string())
    };
    if domain == "docker.io" && !remote.contains('/') {
        return (domain, format!("library/{remote}"));
    }
    (domain, remote)
}

/// `reference.Parse`.
fn parse(s: &str) -> Result<ImageReference, String> {
    if s.is_empty() {
        return Err("repository name must have at least one component".to_string());
    }
    let Some(parts) = match_reference(s) else {
        let lower = s.to_lowercase();
        if lower != s && match_reference(&lower).is_some() {
            return Err("repository name must be lowercase".to_string());
        }
        return Err("invalid reference format".to_string());
    };
    if parts.path.len() > MAX_NAME_LENGTH {
        return Err("repository name must not be more than 255 characters".to_string());
    }
    if let Some(d) = &parts.digest {
        validate_digest(d)?;
    }
    Ok(parts)
}

/// The anchored reference pattern; `None` when `s` does not match.
fn match_reference(s: &str) -> Option<ImageReference> {
    let (name_and_tag, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        if !is_digest_pattern(d) {
            return None;
        }
    }
    // A `:` after the last `/` starts the tag (a port's `:` comes before a `/`).
    let last_slash = name_and_tag.rfind('/');
    let (name, tag) = match name_and_tag.rfind(':') {
        Some(i) if last_slash.is_none_or(|j| i > j) => {
            (&name_and_tag[..i], Some(&name_and_tag[i + 1..]))
        }
        _ => (name_and_tag, None),
    };
    if let Some(t) = tag {
        if !is_tag(t) {
            return None;
        }
    }
    let (domain, path) = match name.split_once('/') {
        Some((d, rest)) if is_domain_and_port(d) && is_remote_name(rest) => {
            (d.to_string(), rest.to_string())
        }
        _ if is_remote_name(name) => (String::new(), name.to_string()),
        _ => return None,
    };
    Some(ImageReference {
        domain,
        path,
        tag: tag.map(str::to_string),
        digest: digest.map(str::to_string),
    })
}

fn is_remote_name(s: &str) -> bool {
    s.split('/').all(is_path_component)
}

/// `[a-z0-9]+ ((?:[._]|__|[-]+) [a-z0-9]+)*`.
fn is_path_component(s: &str) -> bool {
    let bytes = s.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    let mut expect_alnum = true;
    while i < bytes.len() {
        if expect_alnum {
            if !alnum(bytes[i]) {
                return false;
            }
            while i < bytes.len() && alnum(bytes[i]) {
                i += 1;
            }
            expect_alnum = false;
        } else {
            match bytes[i] {
                b'.' => i += 1,
                b'_' => {
                    i += if bytes.get(i + 1) == Some(&b'_') {
                        2
                    } else {
                        1
                    }
                }
                b'-' => {
                    while i < bytes.len() && bytes[i] == b'-' {
                        i += 1;
                    }
                }
                _ => return false,
            }
            expect_alnum = true;
        }
    }
    !s.is_empty() && !expect_alnum
}

/// `host(:port)?`, host a dotted domain name or a bracketed IPv6 address.
fn is_domain_and_port(s: &str) -> bool {
    let (host, port) = if s.starts_with('[') {
        let Some(end) = s.find(']') else { return false };
        let inner = &s[1..end];
        if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        (None, &s[end + 1..])
    } else {
        match s.split_once(':') {
            Some((h, _)) => (Some(h), &s[h.len()..]),
            None => (Some(s), ""),
        }
    };
    if let Some(host) = host {
        let component_ok = |c: &str| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        };
        if !host.split('.').all(component_ok) {
            return false;
        }
    }
    match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(digits) => !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// `[\w][\w.-]{0,127}`.
fn is_tag(s: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

/// `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[[:xdigit:]]{32,}`.
fn is_digest_pattern(s: &str) -> bool {
    let Some((algorithm, hex)) = s.split_once(':') else {
        return false;
    };
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    };
    algorithm.split(['-', '_', '+', '.']).all(component_ok)
        && hex.len() >= 32
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(s: &str) -> Result<String, String> {
        parse_image_reference(s).map(|r| r.to_tagged_string())
    }

    #[test]
    fn normalises() {
        assert_eq!(normal("alpine").unwrap(), "docker.io/library/alpine:latest");
        assert_eq!(
            normal("alpine:3.19").unwrap(),
            "docker.io/library/alpine:3.19"
        );
        assert_eq!(normal("org/app").unwrap(), "docker.io/org/app:latest");
        assert_eq!(
            normal("localhost:5000/app:v1").unwrap(),
            "localhost:5000/app:v1"
        );
        assert_eq!(
            normal("ghcr.io/a/b-c__d.e").unwrap(),
            "ghcr.io/a/b-c__d.e:latest"
        );
        assert_eq!(normal("[::1]:5000/app").unwrap(), "[::1]:5000/app:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            normal(&format!("alpine@{d}")).unwrap(),
            format!("docker.io/library/alpine@{d}")
        );
        assert_eq!(
            normal("index.docker.io/library/busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
    }

    #[test]
    fn rejects_like_distribution() {
        assert_eq!(
            normal("UPPER").unwrap_err(),
            "invalid reference format: repository name (library/UPPER) must be lowercase"
        );
        assert_eq!(normal("a b").unwrap_err(), "invalid reference format");
        assert_eq!(normal("alpine:").unwrap_err(), "invalid reference format");
        assert_eq!(normal("a--").unwrap_err(), "invalid reference format");
        assert_eq!(
            normal("alpine@sha256:abc").unwrap_err(),
            "invalid reference format"
        );
        assert_eq!(
            normal(&format!("alpine@sha256:{}", "a".repeat(40))).unwrap_err(),
            "invalid checksum digest length"
        );
        let hex = "a".repeat(64);
        assert_eq!(
            normal(&hex).unwrap_err(),
            format!("invalid repository name ({hex}), cannot specify 64-byte hexadecimal strings")
        );
        assert!(normal(&format!("a/{}", "b".repeat(260)))
            .unwrap_err()
            .contains("255"));
        assert!(normal("Example.com/app").is_ok());
    }
}
