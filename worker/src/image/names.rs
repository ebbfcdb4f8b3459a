//! Image names: normalising references the way Docker does, showing them the way Docker
//! shows them, and finding a stored image by name or id.
//!
//! Main functions: [`normalize_name`] (`busybox` → `docker.io/library/busybox:latest`, the
//! form names are stored in), [`familiar_name`] (the reverse, for display), [`find_image`]
//! (exact name, normalised name, or a prefix of the image id / manifest digest).
//!
//! Key decision: the store keeps names exactly as given, so every name is normalised here
//! before it is stored or looked up — `busybox`, `busybox:latest` and
//! `docker.io/library/busybox:latest` are one image, as for `docker`.

use strata_cache::{ImageError, ImageRecord, Store};
use strata_frontend::instructions::parse_image_reference;

/// Why a name is unusable or finds nothing.
#[derive(Debug, thiserror::Error)]
pub enum NameError {
    /// Not a valid image reference.
    #[error("invalid reference format {name:?}: {reason}")]
    Invalid {
        /// The rejected name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A tag was asked for with a digest reference (`app@sha256:…`).
    #[error("refusing to create a tag with a digest reference: {name}")]
    DigestTag {
        /// The rejected name.
        name: String,
    },
    /// No stored image matches.
    #[error("no such image: {query}")]
    NotFound {
        /// What was looked up.
        query: String,
    },
    /// An id prefix matches several images.
    #[error("image reference {query} is ambiguous: it matches {count} images")]
    Ambiguous {
        /// What was looked up.
        query: String,
        /// How many images it matches.
        count: usize,
    },
    /// The image index failed.
    #[error(transparent)]
    Store(#[from] ImageError),
}

/// The stored form of an image name: Docker's normalised, tagged reference
/// (`busybox` → `docker.io/library/busybox:latest`; a digest reference keeps its digest).
pub fn normalize_name(name: &str) -> Result<String, NameError> {
    let reference = parse_image_reference(name).map_err(|reason| NameError::Invalid {
        name: name.to_owned(),
        reason,
    })?;
    Ok(reference.to_tagged_string())
}

/// [`normalize_name`] for a name that will be *tagged*: digests are refused, as by
/// `docker tag`.
pub fn normalize_tag(name: &str) -> Result<String, NameError> {
    let reference = parse_image_reference(name).map_err(|reason| NameError::Invalid {
        name: name.to_owned(),
        reason,
    })?;
    if reference.digest.is_some() {
        return Err(NameError::DigestTag {
            name: name.to_owned(),
        });
    }
    Ok(reference.to_tagged_string())
}

/// The short form Docker prints: `docker.io/library/busybox:latest` → `busybox:latest`,
/// `docker.io/org/app:1` → `org/app:1`; other registries are kept.
pub fn familiar_name(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("docker.io/") {
        return rest.strip_prefix("library/").unwrap_or(rest).to_owned();
    }
    name.to_owned()
}

/// Splits a stored name into repository and tag (`None` for a digest reference), in the
/// familiar form: `docker.io/library/busybox:1.36` → (`busybox`, `Some("1.36")`).
pub fn repository_and_tag(name: &str) -> (String, Option<String>) {
    let familiar = familiar_name(name);
    let (repo, tag) = strata_oci::archive::split_tag(&familiar);
    (repo.to_owned(), tag.map(str::to_owned))
}

/// Finds a stored image: by exact name, by normalised name, then by a prefix of its image
/// id (config digest) or manifest digest, with or without `sha256:`.
pub fn find_image(store: &Store, query: &str) -> Result<ImageRecord, NameError> {
    let images = store.images();
    if let Some(found) = images.get(query)? {
        return Ok(found);
    }
    if let Ok(normalized) = normalize_name(query) {
        if let Some(found) = images.get(&normalized)? {
            return Ok(found);
        }
    }
    match images.resolve(query) {
        Ok(found) => Ok(found),
        Err(ImageError::NotFound { .. }) => Err(NameError::NotFound {
            query: query.to_owned(),
        }),
        Err(ImageError::Ambiguous { count, .. }) => Err(NameError::Ambiguous {
            query: query.to_owned(),
            count,
        }),
        Err(e) => Err(e.into()),
    }
}

/// Whether `query` names an image by id (a digest or hex prefix) rather than by name.
pub fn is_id_query(store: &Store, query: &str) -> Result<bool, NameError> {
    let images = store.images();
    if images.get(query)?.is_some() {
        return Ok(false);
    }
    if let Ok(normalized) = normalize_name(query) {
        if images.get(&normalized)?.is_some() {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalise_and_shorten() {
        assert_eq!(
            normalize_name("busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalize_name("localhost:5000/app:v1").unwrap(),
            "localhost:5000/app:v1"
        );
        assert!(normalize_name("Busybox").is_err());
        assert!(normalize_tag(&format!("app@sha256:{}", "a".repeat(64))).is_err());
        assert_eq!(
            familiar_name("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
        assert_eq!(familiar_name("docker.io/org/app:1"), "org/app:1");
        assert_eq!(familiar_name("ghcr.io/org/app:1"), "ghcr.io/org/app:1");
        assert_eq!(
            repository_and_tag("localhost:5000/app:v1"),
            ("localhost:5000/app".to_owned(), Some("v1".to_owned()))
        );
    }
}
