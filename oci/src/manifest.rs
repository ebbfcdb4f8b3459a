//! Manifests, indexes and descriptors (OCI image-spec and Docker registry schema 2).
//!
//! The OCI manifest (`application/vnd.oci.image.manifest.v1+json`) and the Docker schema 2
//! manifest (`application/vnd.docker.distribution.manifest.v2+json`) share one shape, as do
//! the OCI index and the Docker manifest list; one type serves each pair and `media_type`
//! tells them apart. Fields are declared in the order of the Go structs (`specs-go/v1`), and
//! encoding is canonical: [`ImageManifest::to_json`] and [`ImageIndex::to_json`] produce the
//! two-space indented form BuildKit writes (`json.MarshalIndent(m, "", "  ")`), so the same
//! value always has the same digest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::canonical_json::{self, null_as_default, JsonError};
use crate::digest::Digest;
use crate::media_type;

/// Annotation: the tag of an image in an OCI layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation: the full image name, as containerd and BuildKit record it in `index.json`.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// Annotation: creation time.
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// Annotation: the base image's manifest digest.
pub const ANNOTATION_BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
/// Annotation: the base image's name.
pub const ANNOTATION_BASE_NAME: &str = "org.opencontainers.image.base.name";

/// Errors reading or writing manifests and indexes.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The bytes are not a valid manifest or index.
    #[error("invalid {what}: {source}")]
    Parse {
        /// What was being decoded (`image manifest`, `image index`).
        what: &'static str,
        /// The JSON decoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// `schemaVersion` is not 2.
    #[error("unsupported {what} schemaVersion {version} (expected 2)")]
    SchemaVersion {
        /// What was being decoded.
        what: &'static str,
        /// The version found.
        version: u32,
    },
    /// A document's media type is neither a manifest nor an index.
    #[error("unsupported manifest media type {media_type:?}")]
    UnsupportedMediaType {
        /// The media type found.
        media_type: String,
    },
    /// Encoding failed.
    #[error(transparent)]
    Encode(#[from] JsonError),
}

/// A platform (`architecture`/`os`/`variant`…), in index entries and configs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`). Always encoded.
    #[serde(default, deserialize_with = "null_as_default")]
    pub architecture: String,
    /// Operating system (`linux`). Always encoded.
    #[serde(default, deserialize_with = "null_as_default")]
    pub os: String,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub os_version: String,
    /// OS features (Windows).
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub os_features: Vec<String>,
    /// CPU variant (`v8`).
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub variant: String,
    /// CPU features (Docker manifest lists only; reserved in OCI).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub features: Vec<String>,
}

/// A content descriptor: what a blob is, its digest and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The blob's media type.
    pub media_type: String,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// Where else the blob can be fetched (foreign layers).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub urls: Vec<String>,
    /// Arbitrary metadata.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub annotations: BTreeMap<String, String>,
    /// The blob's bytes inline, base64 (as found; not decoded here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Platform of the target manifest (index entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Artifact type of the target.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub artifact_type: String,
}

impl Descriptor {
    /// A descriptor with only the three required fields.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            data: None,
            platform: None,
            artifact_type: String::new(),
        }
    }

    /// A descriptor for `bytes` (digest and size computed).
    pub fn for_bytes(media_type: impl Into<String>, bytes: &[u8]) -> Self {
        Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64)
    }
}

/// An image manifest: one config and the layers, bottom first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`media_type::OCI_MANIFEST`] or [`media_type::DOCKER_MANIFEST`] (required by Docker).
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub media_type: String,
    /// Artifact type (OCI 1.1 artifacts).
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub artifact_type: String,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, bottom first. Always encoded.
    #[serde(default, deserialize_with = "null_as_default")]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Arbitrary metadata.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub annotations: BTreeMap<String, String>,
}

impl ImageManifest {
    /// An OCI manifest for `config` and `layers`.
    pub fn oci(config: Descriptor, layers: Vec<Descriptor>) -> Self {
        ImageManifest {
            schema_version: 2,
            media_type: media_type::OCI_MANIFEST.to_owned(),
            artifact_type: String::new(),
            config,
            layers,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    /// A Docker schema 2 manifest for `config` and `layers` (their media types are the
    /// caller's: Docker ones are expected).
    pub fn docker(config: Descriptor, layers: Vec<Descriptor>) -> Self {
        ImageManifest {
            media_type: media_type::DOCKER_MANIFEST.to_owned(),
            ..ImageManifest::oci(config, layers)
        }
    }

    /// Decodes a manifest and checks its schema version.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        decode_v2(bytes, "image manifest", |m: &Self| m.schema_version)
    }

    /// Canonical encoding (two-space indent, as BuildKit writes manifests).
    pub fn to_json(&self) -> Result<Vec<u8>, ManifestError> {
        Ok(canonical_json::to_vec_pretty(self)?)
    }
}

/// An image index (OCI) or manifest list (Docker): manifests for several platforms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// [`media_type::OCI_INDEX`] or [`media_type::DOCKER_MANIFEST_LIST`].
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub media_type: String,
    /// Artifact type (OCI 1.1).
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub artifact_type: String,
    /// The entries. Always encoded.
    #[serde(default, deserialize_with = "null_as_default")]
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Arbitrary metadata.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub annotations: BTreeMap<String, String>,
}

impl ImageIndex {
    /// An OCI index of `manifests`.
    pub fn oci(manifests: Vec<Descriptor>) -> Self {
        ImageIndex {
            schema_version: 2,
            media_type: media_type::OCI_INDEX.to_owned(),
            artifact_type: String::new(),
            manifests,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    /// A Docker manifest list of `manifests`.
    pub fn docker(manifests: Vec<Descriptor>) -> Self {
        ImageIndex {
            media_type: media_type::DOCKER_MANIFEST_LIST.to_owned(),
            ..ImageIndex::oci(manifests)
        }
    }

    /// Decodes an index and checks its schema version.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        decode_v2(bytes, "image index", |i: &Self| i.schema_version)
    }

    /// Canonical encoding (two-space indent, as BuildKit writes indexes).
    pub fn to_json(&self) -> Result<Vec<u8>, ManifestError> {
        Ok(canonical_json::to_vec_pretty(self)?)
    }
}

/// Decodes a manifest-like document and checks it is schema version 2.
fn decode_v2<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
    version: impl Fn(&T) -> u32,
) -> Result<T, ManifestError> {
    let doc: T =
        serde_json::from_slice(bytes).map_err(|source| ManifestError::Parse { what, source })?;
    let found = version(&doc);
    if found != 2 {
        return Err(ManifestError::SchemaVersion {
            what,
            version: found,
        });
    }
    Ok(doc)
}

/// A decoded manifest-like document: either one image or an index of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestDocument {
    /// A single-platform image manifest.
    Manifest(Box<ImageManifest>),
    /// An index / manifest list.
    Index(Box<ImageIndex>),
}

impl ManifestDocument {
    /// Decodes `bytes`, choosing the type from `media_type` (a descriptor's) or, when that
    /// is empty or generic, from the document's own `mediaType` or shape (`manifests` vs
    /// `layers`), as registries and layouts in the wild require.
    pub fn from_json(media_type: &str, bytes: &[u8]) -> Result<Self, ManifestError> {
        if media_type::is_manifest(media_type) {
            return ImageManifest::from_json(bytes)
                .map(|m| ManifestDocument::Manifest(Box::new(m)));
        }
        if media_type::is_index(media_type) {
            return ImageIndex::from_json(bytes).map(|i| ManifestDocument::Index(Box::new(i)));
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            #[serde(default)]
            media_type: Option<String>,
            #[serde(default)]
            manifests: Option<serde::de::IgnoredAny>,
            #[serde(default)]
            layers: Option<serde::de::IgnoredAny>,
        }
        let probe: Probe =
            serde_json::from_slice(bytes).map_err(|source| ManifestError::Parse {
                what: "manifest",
                source,
            })?;
        match probe.media_type.as_deref() {
            Some(t) if media_type::is_manifest(t) => {
                ImageManifest::from_json(bytes).map(|m| ManifestDocument::Manifest(Box::new(m)))
            }
            Some(t) if media_type::is_index(t) => {
                ImageIndex::from_json(bytes).map(|i| ManifestDocument::Index(Box::new(i)))
            }
            _ if probe.manifests.is_some() => {
                ImageIndex::from_json(bytes).map(|i| ManifestDocument::Index(Box::new(i)))
            }
            _ if probe.layers.is_some() => {
                ImageManifest::from_json(bytes).map(|m| ManifestDocument::Manifest(Box::new(m)))
            }
            _ => Err(ManifestError::UnsupportedMediaType {
                media_type: probe.media_type.unwrap_or_else(|| media_type.to_owned()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_encodes_like_buildkit() {
        let config = Descriptor::for_bytes(media_type::OCI_CONFIG, b"{}");
        let layer = Descriptor::new(media_type::OCI_LAYER_GZIP, Digest::of(b"x"), 1234);
        let manifest = ImageManifest::oci(config.clone(), vec![layer.clone()]);
        let json = String::from_utf8(manifest.to_json().unwrap()).unwrap();
        let expected = format!(
            "{{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"{}\",\n  \"config\": {{\n    \"mediaType\": \"{}\",\n    \"digest\": \"{}\",\n    \"size\": 2\n  }},\n  \"layers\": [\n    {{\n      \"mediaType\": \"{}\",\n      \"digest\": \"{}\",\n      \"size\": 1234\n    }}\n  ]\n}}",
            media_type::OCI_MANIFEST,
            media_type::OCI_CONFIG,
            config.digest,
            media_type::OCI_LAYER_GZIP,
            layer.digest
        );
        assert_eq!(json, expected);
        let back = ImageManifest::from_json(json.as_bytes()).unwrap();
        assert_eq!(back, manifest);
        assert_eq!(back.to_json().unwrap(), json.as_bytes());
    }

    #[test]
    fn index_with_platforms() {
        let mut entry = Descriptor::new(media_type::OCI_MANIFEST, Digest::of(b"m"), 10);
        entry.platform = Some(Platform {
            architecture: "arm64".into(),
            os: "linux".into(),
            variant: "v8".into(),
            ..Default::default()
        });
        entry
            .annotations
            .insert(ANNOTATION_REF_NAME.into(), "latest".into());
        let index = ImageIndex::oci(vec![entry]);
        let json = String::from_utf8(index.to_json().unwrap()).unwrap();
        assert!(json.contains(
            "\"platform\": {\n        \"architecture\": \"arm64\",\n        \"os\": \"linux\",\n        \"variant\": \"v8\"\n      }"
        ), "{json}");
        let annotations_at = json.find("annotations").unwrap();
        assert!(annotations_at < json.find("platform").unwrap());
        assert_eq!(ImageIndex::from_json(json.as_bytes()).unwrap(), index);
    }

    #[test]
    fn documents_are_told_apart() {
        let manifest = ImageManifest::docker(
            Descriptor::for_bytes(media_type::DOCKER_CONFIG, b"{}"),
            vec![],
        )
        .to_json()
        .unwrap();
        let index = ImageIndex::docker(vec![]).to_json().unwrap();
        assert!(matches!(
            ManifestDocument::from_json("", &manifest).unwrap(),
            ManifestDocument::Manifest(_)
        ));
        assert!(matches!(
            ManifestDocument::from_json("application/octet-stream", &index).unwrap(),
            ManifestDocument::Index(_)
        ));
        assert!(matches!(
            ManifestDocument::from_json(media_type::OCI_INDEX, &index).unwrap(),
            ManifestDocument::Index(_)
        ));
        assert!(ManifestDocument::from_json("", b"{}").is_err());
    }

    #[test]
    fn rejects_wrong_schema_and_bad_digest() {
        let err = ImageManifest::from_json(
            br#"{"schemaVersion":1,"config":{"mediaType":"x","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            ManifestError::SchemaVersion { version: 1, .. }
        ));
        let err = ImageManifest::from_json(
            br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"md5:00","size":0},"layers":[]}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unsupported digest algorithm"),
            "{err}"
        );
    }
}
