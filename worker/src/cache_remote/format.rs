//! The cache config: Strata's own document mapping cache keys to layer chains.
//!
//! Main types: [`CacheConfig`] (the document), [`CacheLayer`] (a layer blob and its diff
//! id), [`CacheRecordEntry`] (a cache key, its chain as indexes into the layers, and the
//! record's payload).
//!
//! Key decision: the idea is BuildKit's `application/vnd.buildkit.cacheconfig.v0` (layers
//! listed once, records pointing into them), but the document is Strata's own
//! ([`CONFIG_MEDIA_TYPE`]): Strata reads what Strata writes, and a BuildKit cache is not
//! understood (its keys are computed differently anyway). The config is untrusted input:
//! [`CacheConfig::parse`] bounds its size and checks every index, key and digest before
//! anything uses it.

use serde::{Deserialize, Serialize};
use strata_oci::{media_type, Descriptor, Digest};

/// Media type of the cache config blob (the manifest's `config`).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.strata.cache.config.v1+json";
/// The only version this code reads and writes.
pub const CONFIG_VERSION: u32 = 1;
/// Largest cache config read (a config of 10 000 records is well under 4 MiB).
pub const MAX_CONFIG_SIZE: u64 = 16 << 20;

/// Why a cache config was refused.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Not JSON of the expected shape.
    #[error("invalid cache config: {source}")]
    Json {
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Larger than [`MAX_CONFIG_SIZE`].
    #[error("cache config of {size} bytes is larger than the limit of {MAX_CONFIG_SIZE}")]
    TooLarge {
        /// Its size.
        size: u64,
    },
    /// Another version of the format.
    #[error("cache config version {version} is not supported (expected {CONFIG_VERSION})")]
    Version {
        /// The version found.
        version: u32,
    },
    /// A record is inconsistent.
    #[error("invalid cache config: record {index}: {reason}")]
    Record {
        /// 0-based record index.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A layer entry is inconsistent.
    #[error("invalid cache config: layer {index}: {reason}")]
    Layer {
        /// 0-based layer index.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// A layer blob in the cache and the digest of its uncompressed tar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheLayer {
    /// The blob as stored in the cache (gzip for built layers).
    pub blob: Descriptor,
    /// The digest of the uncompressed tar.
    #[serde(rename = "diffID")]
    pub diff_id: Digest,
}

/// One cache record: a step's cache key and the filesystem it produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheRecordEntry {
    /// The solver's cache key, lowercase hex (64 characters).
    pub key: String,
    /// The layers of the result, bottom first, as indexes into [`CacheConfig::layers`]
    /// (steps whose diff is empty add none).
    pub chain: Vec<usize>,
    /// The record's opaque payload, lowercase hex (usually empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub payload: String,
}

/// The cache config document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheConfig {
    /// [`CONFIG_VERSION`].
    pub version: u32,
    /// Every layer blob the records use, each once.
    pub layers: Vec<CacheLayer>,
    /// The records, sorted by key.
    pub records: Vec<CacheRecordEntry>,
}

impl CacheConfig {
    /// Reads and checks a config.
    pub fn parse(bytes: &[u8]) -> Result<CacheConfig, FormatError> {
        if bytes.len() as u64 > MAX_CONFIG_SIZE {
            return Err(FormatError::TooLarge {
                size: bytes.len() as u64,
            });
        }
        let config: CacheConfig =
            serde_json::from_slice(bytes).map_err(|source| FormatError::Json { source })?;
        if config.version != CONFIG_VERSION {
            return Err(FormatError::Version {
                version: config.version,
            });
        }
        for (index, layer) in config.layers.iter().enumerate() {
            if !media_type::is_layer(&layer.blob.media_type) {
                return Err(FormatError::Layer {
                    index,
                    reason: format!("{:?} is not a layer media type", layer.blob.media_type),
                });
            }
        }
        for (index, record) in config.records.iter().enumerate() {
            let fail = |reason: String| FormatError::Record { index, reason };
            if parse_key(&record.key).is_none() {
                return Err(fail(format!("key {:?} is not 64 hex digits", record.key)));
            }
            if let Some(bad) = record.chain.iter().find(|&&i| i >= config.layers.len()) {
                return Err(fail(format!(
                    "layer index {bad} is out of range ({} layers)",
                    config.layers.len()
                )));
            }
            if decode_hex(&record.payload).is_none() {
                return Err(fail("payload is not hex".into()));
            }
        }
        Ok(config)
    }

    /// The document's bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("cache config serializes")
    }
}

/// A 64-hex-digit key as 32 bytes.
pub fn parse_key(hex: &str) -> Option<[u8; 32]> {
    let bytes = decode_hex(hex)?;
    bytes.try_into().ok()
}

/// Lowercase hex of `bytes`.
pub fn encode_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Bytes of a lowercase or uppercase hex string; `None` if it is not hex.
pub fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(n: u8) -> CacheLayer {
        CacheLayer {
            blob: Descriptor::new(media_type::OCI_LAYER_GZIP, Digest::of(&[n]), 1),
            diff_id: Digest::of(&[n, n]),
        }
    }

    fn config() -> CacheConfig {
        CacheConfig {
            version: CONFIG_VERSION,
            layers: vec![layer(1), layer(2)],
            records: vec![CacheRecordEntry {
                key: encode_hex(&[0xab; 32]),
                chain: vec![0, 1],
                payload: encode_hex(b"x"),
            }],
        }
    }

    #[test]
    fn round_trips() {
        let c = config();
        assert_eq!(CacheConfig::parse(&c.to_json()).unwrap(), c);
        assert_eq!(parse_key(&c.records[0].key), Some([0xab; 32]));
        assert_eq!(decode_hex(&c.records[0].payload).unwrap(), b"x");
    }

    #[test]
    fn refuses_bad_configs() {
        let mut c = config();
        c.records[0].chain.push(2);
        let e = CacheConfig::parse(&c.to_json()).unwrap_err().to_string();
        assert!(e.contains("layer index 2 is out of range"), "{e}");

        let mut c = config();
        c.records[0].key = "abc".into();
        assert!(CacheConfig::parse(&c.to_json()).is_err());

        let mut c = config();
        c.version = 2;
        let e = CacheConfig::parse(&c.to_json()).unwrap_err().to_string();
        assert!(e.contains("version 2"), "{e}");

        let mut c = config();
        c.layers[0].blob.media_type = "application/json".into();
        assert!(CacheConfig::parse(&c.to_json()).is_err());

        assert!(CacheConfig::parse(b"{").is_err());
        assert!(CacheConfig::parse(&vec![b' '; MAX_CONFIG_SIZE as usize + 1]).is_err());
    }
}
