//! Image references as the registry client needs them: registry host, repository path, tag
//! and digest.
//!
//! Main type: [`Reference`]. [`Reference::parse`] applies Docker's normalisation
//! (`busybox` → `docker.io/library/busybox:latest`, `index.docker.io` → `docker.io`), so a
//! name given on the command line and a name stored in the image index parse the same way.
//!
//! Key decision: `docker.io` is the name users see and the store keeps; the host actually
//! spoken to is `registry-1.docker.io` ([`Reference::api_host`]), as in Docker.

use std::fmt;

use crate::digest::Digest;

/// The registry behind the name `docker.io`.
pub const DOCKER_HUB: &str = "docker.io";
/// The host Docker Hub's registry API is served from.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The tag used when a reference names none.
pub const DEFAULT_TAG: &str = "latest";

/// Why a reference is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference format {reference:?}: {reason}")]
pub struct ReferenceError {
    /// The rejected text.
    pub reference: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host (with port): `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path: `library/busybox`.
    pub repository: String,
    /// Tag, if any (`latest` when neither a tag nor a digest is given).
    pub tag: Option<String>,
    /// Digest, if any.
    pub digest: Option<Digest>,
}

fn is_path_component(s: &str) -> bool {
    // [a-z0-9]+ separated by `.`, `_`, `__` or runs of `-`.
    let bytes = s.as_bytes();
    if bytes.is_empty()
        || !bytes[0].is_ascii_alphanumeric()
        || !bytes[bytes.len() - 1].is_ascii_alphanumeric()
    {
        return false;
    }
    let mut separator = String::new();
    for &b in bytes {
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            if !(separator.is_empty()
                || separator == "."
                || separator == "_"
                || separator == "__"
                || separator.bytes().all(|c| c == b'-'))
            {
                return false;
            }
            separator.clear();
        } else if matches!(b, b'.' | b'_' | b'-') {
            separator.push(b as char);
        } else {
            return false;
        }
    }
    true
}

fn is_tag(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn is_host(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || s.starts_with('[') => (h, Some(p)),
        _ => (s, None),
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
    } else {
        !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    host_ok && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

impl Reference {
    /// Parses and normalises `text` (see the module docs).
    pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
        let fail = |reason: &str| ReferenceError {
            reference: text.to_owned(),
            reason: reason.to_owned(),
        };
        if text.is_empty() {
            return Err(fail("empty reference"));
        }
        let (name_and_tag, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                let digest: Digest = digest
                    .parse()
                    .map_err(|e| fail(&format!("invalid digest: {e}")))?;
                (rest, Some(digest))
            }
            None => (text, None),
        };
        // A `:` after the last `/` starts the tag (before it, it is a registry port).
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => (
                &name_and_tag[..last_slash + i],
                Some(&name_and_tag[last_slash + i + 1..]),
            ),
            None => (name_and_tag, None),
        };
        if let Some(tag) = tag {
            if !is_tag(tag) {
                return Err(fail(&format!("invalid tag {tag:?}")));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first == "localhost"
                    || first.contains(['.', ':'])
                    || first.starts_with('[')
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                if !is_host(first) {
                    return Err(fail(&format!("invalid registry host {first:?}")));
                }
                let registry = if first == "index.docker.io" {
                    DOCKER_HUB
                } else {
                    first
                };
                (registry.to_owned(), rest.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.len() > 255 {
            return Err(fail("repository name must not be more than 255 characters"));
        }
        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(fail("repository name must be lowercase"));
        }
        if !repository.split('/').all(is_path_component) {
            return Err(fail("invalid repository name"));
        }
        let tag = match (tag, digest) {
            (Some(tag), _) => Some(tag.to_owned()),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The host the registry API is reached at (`docker.io` → `registry-1.docker.io`).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// `registry/repository` (no tag or digest).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What `/v2/<repo>/manifests/<here>` takes: the digest if there is one, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository pinned to `digest` (the tag is dropped).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// Whether the registry host is this machine (`localhost`, `127.*`, `[::1]`): plain
    /// http is allowed there without `--insecure-registry`.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.registry)
    }
}

/// Whether `host` (with or without a port) is a loopback name or address.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    bare == "localhost"
        || bare == "::1"
        || bare
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_hub_names_are_normalised() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = Reference::parse("org/app:1.2").unwrap();
        assert_eq!(r.to_string(), "docker.io/org/app:1.2");
        let r = Reference::parse("index.docker.io/library/busybox:1").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:1");
    }

    #[test]
    fn registries_with_ports_and_digests() {
        let r = Reference::parse("127.0.0.1:5000/a/b:v1").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "a/b");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert!(r.is_loopback());
        let r = Reference::parse(&format!("localhost:5000/app@sha256:{HEX}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_reference(), format!("sha256:{HEX}"));
        assert!(r.is_loopback());
        let r = Reference::parse(&format!("example.com/app:1@sha256:{HEX}")).unwrap();
        assert_eq!(r.to_string(), format!("example.com/app:1@sha256:{HEX}"));
        assert!(!r.is_loopback());
    }

    #[test]
    fn bad_references_are_rejected() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox:bad tag",
            "a//b",
            "busybox@sha256:12",
            "-a/b",
            "example.com:x/app",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("localhost"));
        assert!(is_loopback_host("127.0.0.1:5000"));
        assert!(is_loopback_host("[::1]:5000"));
        assert!(!is_loopback_host("10.0.0.1:5000"));
        assert!(!is_loopback_host("example.com"));
    }
}
