//! Build cache import and export: `--cache-to` / `--cache-from` of `type=local` (an OCI
//! image layout directory) and `type=registry` (a manifest in a registry).
//!
//! Main items: [`CacheTo`] / [`CacheFrom`] (the parsed options), [`export_cache`] (cache
//! records of a finished build → layer blobs + a [`format::CacheConfig`] at the
//! destination), [`ImportedCache`] (configs loaded before a solve; the worker's `load`
//! asks it on a local miss) and [`CacheIoError`].
//!
//! Format: an OCI image manifest whose `config` is the cache config
//! ([`format::CONFIG_MEDIA_TYPE`], cache key → chain of layers) and whose `layers` are every
//! layer blob the records use (gzip, as a push writes them, so a cache and a pushed image
//! share blobs). Locally it is an OCI image layout (`index.json` → the manifest, tagged
//! `latest` or `tag=`); in a registry it is the manifest under `ref=`. This is Strata's own
//! format after BuildKit's idea (`application/vnd.buildkit.cacheconfig.v0`): Strata reads
//! what Strata writes.
//!
//! Key decisions:
//! - Lazy import: loading a cache reads only its manifest and config. A record is turned
//!   into snapshots only when the solver's top-down lookup asks for its key, so the layers
//!   of a step whose result is never needed (a later step hit) are never fetched; layers the
//!   store already has (by blob or by diff id) are not fetched either.
//! - Bad cache is ignored, as BuildKit does (its edge drops a record whose load failed and
//!   runs the op): a blob whose digest does not match, a hostile layer, an unreachable
//!   registry each make the lookup a miss with a warning ([`ImportedCache::warnings`]); the
//!   step then runs.
//! - Export uploads only what the destination lacks: an existing file of the right size in
//!   a local layout, a `HEAD` hit in a registry.
//! - `mode=min` (the default, as BuildKit's) exports the records whose result is part of the
//!   final image's filesystem; `mode=max` every step's record, intermediate stages too.

mod export;
pub mod format;
mod import;

pub use export::{export_cache, ExportReport};
pub use import::ImportedCache;

use std::path::PathBuf;
use strata_oci::registry::{Reference, ReferenceError, RegistryError};
use strata_oci::Digest;

/// Which records are exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// Only the steps whose result is in the final image.
    #[default]
    Min,
    /// Every step, intermediate stages included.
    Max,
}

/// Where a cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLocation {
    /// An OCI image layout directory, and the tag in its `index.json`.
    Local {
        /// The directory.
        dir: PathBuf,
        /// The `org.opencontainers.image.ref.name` of the cache manifest.
        tag: String,
    },
    /// A manifest in a registry.
    Registry(Reference),
}

impl std::fmt::Display for CacheLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheLocation::Local { dir, tag } => write!(f, "{}:{tag}", dir.display()),
            CacheLocation::Registry(r) => write!(f, "{r}"),
        }
    }
}

/// `--cache-to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheTo {
    /// The destination.
    pub location: CacheLocation,
    /// Which records.
    pub mode: CacheMode,
}

/// `--cache-from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheFrom {
    /// The source.
    pub location: CacheLocation,
}

/// Why a `--cache-to` / `--cache-from` value was refused.
#[derive(Debug, thiserror::Error)]
pub enum CacheSpecError {
    /// A field this option does not take.
    #[error("invalid cache option {spec:?}: unknown field {field:?}{hint}")]
    Field {
        /// The whole value.
        spec: String,
        /// The field.
        field: String,
        /// What the type takes.
        hint: &'static str,
    },
    /// The type is missing or not supported.
    #[error("invalid cache option {spec:?}: {reason} (supported: type=local, type=registry)")]
    Type {
        /// The whole value.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// A required field is missing or a value is invalid.
    #[error("invalid cache option {spec:?}: {reason}")]
    Value {
        /// The whole value.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// The registry reference is invalid.
    #[error("invalid cache option {spec:?}")]
    Reference {
        /// The whole value.
        spec: String,
        /// The cause.
        #[source]
        source: ReferenceError,
    },
}

/// The fields of a `type=…,k=v` value.
struct Fields<'a> {
    spec: &'a str,
    kind: String,
    pairs: Vec<(&'a str, &'a str)>,
}

fn fields(spec: &str) -> Result<Fields<'_>, CacheSpecError> {
    let mut kind = None;
    let mut pairs = Vec::new();
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        if k == "type" {
            kind = Some(v.to_owned());
        } else {
            pairs.push((k, v));
        }
    }
    let kind = kind.ok_or_else(|| CacheSpecError::Type {
        spec: spec.into(),
        reason: "type= is required".into(),
    })?;
    Ok(Fields { spec, kind, pairs })
}

impl Fields<'_> {
    /// Whether the type is `local` (else `registry`), with the hint listing its fields.
    fn location(
        &self,
        local_hint: &'static str,
        registry_hint: &'static str,
    ) -> Result<(bool, &'static str), CacheSpecError> {
        match self.kind.as_str() {
            "local" => Ok((true, local_hint)),
            "registry" => Ok((false, registry_hint)),
            other => Err(CacheSpecError::Type {
                spec: self.spec.into(),
                reason: format!("cache type {other:?} is not supported"),
            }),
        }
    }

    fn unknown(&self, field: &str, hint: &'static str) -> CacheSpecError {
        CacheSpecError::Field {
            spec: self.spec.into(),
            field: field.into(),
            hint,
        }
    }

    fn value(&self, reason: impl Into<String>) -> CacheSpecError {
        CacheSpecError::Value {
            spec: self.spec.into(),
            reason: reason.into(),
        }
    }

    /// The local directory (given as field `dir.0`) or the registry reference the fields
    /// named, whichever the type needs.
    fn cache_location(
        &self,
        local: bool,
        dir: (&str, Option<PathBuf>),
        tag: Option<String>,
        reference: Option<Reference>,
    ) -> Result<CacheLocation, CacheSpecError> {
        if !local {
            return reference
                .map(CacheLocation::Registry)
                .ok_or_else(|| self.value("type=registry needs ref=HOST/REPO:TAG"));
        }
        let (field, dir) = dir;
        let dir = dir
            .filter(|d| !d.as_os_str().is_empty())
            .ok_or_else(|| self.value(format!("type=local needs {field}=DIR")))?;
        Ok(CacheLocation::Local {
            dir,
            tag: tag.unwrap_or_else(|| LOCAL_TAG.into()),
        })
    }

    fn reference(&self, text: &str) -> Result<Reference, CacheSpecError> {
        let reference = Reference::parse(text).map_err(|source| CacheSpecError::Reference {
            spec: self.spec.into(),
            source,
        })?;
        if reference.tag.is_none() {
            return Err(self.value("ref= must name a tag (HOST/REPO:TAG), not a digest"));
        }
        Ok(reference)
    }
}

const LOCAL_TAG: &str = "latest";

impl CacheTo {
    /// Parses `type=local,dest=DIR[,tag=T][,mode=min|max]` or
    /// `type=registry,ref=HOST/REPO:TAG[,mode=min|max]`.
    pub fn parse(spec: &str) -> Result<CacheTo, CacheSpecError> {
        let f = fields(spec)?;
        let mut mode = CacheMode::Min;
        let (mut dest, mut tag, mut reference) = (None, None, None);
        let (local, hint) = f.location(
            " (type=local takes dest=, tag=, mode=)",
            " (type=registry takes ref=, mode=)",
        )?;
        for &(k, v) in &f.pairs {
            match k {
                "mode" => {
                    mode = match v {
                        "min" => CacheMode::Min,
                        "max" => CacheMode::Max,
                        _ => return Err(f.value(format!("mode={v:?}: expected min or max"))),
                    }
                }
                "dest" if local => dest = Some(PathBuf::from(v)),
                "tag" if local => tag = Some(v.to_owned()),
                "ref" if !local => reference = Some(f.reference(v)?),
                // BuildKit exporter options Strata has no use for: accepted, as buildx does.
                "ignore-error" | "compression" | "oci-mediatypes" | "image-manifest" => {}
                _ => return Err(f.unknown(k, hint)),
            }
        }
        let location = f.cache_location(local, ("dest", dest), tag, reference)?;
        Ok(CacheTo { location, mode })
    }
}

impl CacheFrom {
    /// Parses `type=local,src=DIR[,tag=T]` or `type=registry,ref=HOST/REPO:TAG`.
    pub fn parse(spec: &str) -> Result<CacheFrom, CacheSpecError> {
        let f = fields(spec)?;
        let (mut src, mut tag, mut reference) = (None, None, None);
        let (local, hint) = f.location(
            " (type=local takes src=, tag=)",
            " (type=registry takes ref=)",
        )?;
        for &(k, v) in &f.pairs {
            match k {
                "src" if local => src = Some(PathBuf::from(v)),
                "tag" if local => tag = Some(v.to_owned()),
                "ref" if !local => reference = Some(f.reference(v)?),
                _ => return Err(f.unknown(k, hint)),
            }
        }
        let location = f.cache_location(local, ("src", src), tag, reference)?;
        Ok(CacheFrom { location })
    }
}

/// A cache import or export failure.
#[derive(Debug, thiserror::Error)]
pub enum CacheIoError {
    /// A file of a local cache could not be read or written.
    #[error("cache {location}: cannot {action} {path}: {source}")]
    Io {
        /// The cache.
        location: String,
        /// `read`, `write`, `create`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The registry refused or failed.
    #[error("cache {location}: {source}")]
    Registry {
        /// The cache.
        location: String,
        /// The cause.
        #[source]
        source: Box<RegistryError>,
    },
    /// The cache's manifest, index or config is invalid.
    #[error("cache {location}: {reason}")]
    Invalid {
        /// The cache.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// A blob's bytes are not what its digest says.
    #[error("cache {location}: blob {expected} has digest {actual}: the cache is corrupt")]
    DigestMismatch {
        /// The cache.
        location: String,
        /// The digest the cache names.
        expected: Digest,
        /// The digest of the bytes read.
        actual: Digest,
    },
    /// The local store failed (reading records, writing layers, unpacking).
    #[error("cache {location}: {reason}")]
    Store {
        /// The cache.
        location: String,
        /// What failed, with its cause.
        reason: String,
    },
    /// A blocking task died.
    #[error("cache task failed: {reason}")]
    Task {
        /// What happened.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cache_options() {
        let to = CacheTo::parse("type=local,dest=/c,mode=max").unwrap();
        assert_eq!(to.mode, CacheMode::Max);
        assert_eq!(
            to.location,
            CacheLocation::Local {
                dir: "/c".into(),
                tag: "latest".into()
            }
        );
        let to = CacheTo::parse("type=registry,ref=127.0.0.1:5000/app:cache").unwrap();
        assert_eq!(to.mode, CacheMode::Min);
        assert!(matches!(to.location, CacheLocation::Registry(r) if r.repository == "app"));
        let from = CacheFrom::parse("type=local,src=/c,tag=t").unwrap();
        assert_eq!(
            from.location,
            CacheLocation::Local {
                dir: "/c".into(),
                tag: "t".into()
            }
        );
        assert!(CacheFrom::parse("type=registry,ref=127.0.0.1:5000/app:c").is_ok());
    }

    #[test]
    fn refuses_bad_cache_options() {
        for (spec, want) in [
            ("dest=/c", "type= is required"),
            ("type=gha", "not supported"),
            ("type=local", "needs dest=DIR"),
            ("type=local,dest=/c,mode=all", "expected min or max"),
            ("type=local,dest=/c,ref=x", "unknown field \"ref\""),
            ("type=registry", "needs ref="),
        ] {
            let e = CacheTo::parse(spec).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
        let e = CacheFrom::parse("type=local,dest=/c")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field \"dest\""), "{e}");
        let e = CacheFrom::parse("type=local").unwrap_err().to_string();
        assert!(e.contains("needs src=DIR"), "{e}");
    }
}
