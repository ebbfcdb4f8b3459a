//! `strata build --build-context NAME=VALUE`, as buildx reads it, for image values: `FROM
//! NAME` and `COPY --from=NAME` then use that image instead of the one the name would find.
//!
//! - `docker-image://REF`: an image of the local store by name or id.
//! - `oci-layout://PATH[:TAG|@sha256:…]`: an image of an OCI layout directory, its blobs
//!   verified into the content store (untagged) and used by digest. Without `:TAG` or a
//!   digest the layout must hold exactly one image.
//!
//! Key decision: a context resolves to a manifest digest and an image config before
//! lowering, exactly like a stored base image, so the graph pins it by digest and the worker
//! needs nothing new. Directory and URL contexts (which would be `Local`/`Git`/`Http`
//! sources under a name) are not supported yet and are refused with that message.

use anyhow::{anyhow, bail, Context as _, Result};
use std::collections::HashMap;
use std::path::Path;
use strata_cache::Store;
use strata_frontend::lower::BaseImageConfig;
use strata_oci::manifest::{Platform, ANNOTATION_REF_NAME};
use strata_oci::Descriptor;
use strata_worker::image;

/// Image build contexts by name.
#[derive(Debug, Default)]
pub struct BuildContexts {
    images: HashMap<String, BaseImageConfig>,
}

impl BuildContexts {
    /// Parses and resolves every `--build-context` (layouts are imported here).
    pub fn resolve(store: &Store, specs: &[String], platform: &Platform) -> Result<Self> {
        let mut images = HashMap::new();
        for spec in specs {
            let (name, value) = spec
                .split_once('=')
                .filter(|(n, v)| !n.is_empty() && !v.is_empty())
                .ok_or_else(|| anyhow!("invalid build context {spec:?}: expected NAME=VALUE"))?;
            let manifest = if let Some(reference) = value.strip_prefix("docker-image://") {
                let record = image::find_image(store, reference).map_err(|e| {
                    anyhow!("build context {name}: {reference}: {e} (load or pull it first)")
                })?;
                image::target_descriptor(&record.target)
            } else if let Some(rest) = value.strip_prefix("oci-layout://") {
                import_layout(store, rest).with_context(|| format!("build context {name}"))?
            } else {
                bail!(
                    "build context {name}={value}: only docker-image:// and oci-layout:// \
                     contexts are supported"
                );
            };
            let stored = image::read_image(store, &manifest, platform)
                .with_context(|| format!("build context {name}: reading {}", manifest.digest))?;
            let config = BaseImageConfig {
                digest: Some(manifest.digest.to_string()),
                image: image::from_oci_config(&stored.config),
            };
            if let Ok(normalized) = image::normalize_name(name) {
                images.insert(normalized, config.clone());
            }
            images.insert(name.to_string(), config);
        }
        Ok(Self { images })
    }

    /// The image standing for `name` (as written, or normalised), if a context names it.
    pub fn image(&self, name: &str) -> Option<&BaseImageConfig> {
        self.images.get(name).or_else(|| {
            image::normalize_name(name)
                .ok()
                .and_then(|n| self.images.get(&n))
        })
    }
}

/// Imports the image `PATH[:TAG|@DIGEST]` of an OCI layout into the content store.
fn import_layout(store: &Store, spec: &str) -> Result<Descriptor> {
    let (path, selector) = match spec.rsplit_once('@') {
        Some((path, digest)) => (path, Some(Err(digest))),
        None => match spec.rsplit_once(':') {
            // A tag follows the last path component only.
            Some((path, tag)) if !tag.contains('/') => (path, Some(Ok(tag))),
            _ => (spec, None),
        },
    };
    let lease = store.lease();
    let mut sink = image::StoreBlobs::new(store, &lease);
    let found = strata_oci::archive::read_oci_layout(Path::new(path), &mut sink)
        .with_context(|| format!("cannot read the OCI layout {path}"))?;
    let mut matching: Vec<&Descriptor> = found
        .iter()
        .map(|image| &image.manifest)
        .filter(|m| match selector {
            None => true,
            Some(Ok(tag)) => {
                m.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) == Some(tag)
            }
            Some(Err(digest)) => m.digest.to_string() == digest,
        })
        .collect();
    matching.dedup_by_key(|m| m.digest);
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!(
            "the OCI layout {path} has no image {}",
            selector_text(selector)
        ),
        many => bail!(
            "the OCI layout {path} has {} images; pick one with :TAG or @sha256:…",
            many.len()
        ),
    }
}

fn selector_text(selector: Option<Result<&str, &str>>) -> String {
    match selector {
        Some(Ok(tag)) => format!("tagged {tag:?}"),
        Some(Err(digest)) => digest.to_string(),
        None => "at all".into(),
    }
}
