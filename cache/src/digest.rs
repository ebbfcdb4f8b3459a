//! Content digests (`sha256:<64 hex>`), the names of blobs in the content store.
//!
//! Main type: [`Digest`], 32 raw bytes, printed and parsed as `sha256:<hex>`.
//!
//! Key decision: this is a stand-in with the same surface as `strata_oci::Digest`
//! (`of`, `from_sha256`, `as_bytes`, `hex`, `from_hex`, `FromStr`, `Display`). The OCI crate
//! did not build yet when the store was written; once it does, this module becomes
//! `pub use strata_oci::Digest` and nothing else changes.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// Why a string is not a valid digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Not of the form `sha256:<64 lowercase hex>`.
    #[error("invalid digest {input:?}: expected sha256:<64 lowercase hex digits>")]
    Invalid {
        /// The rejected input.
        input: String,
    },
}

/// A sha256 content digest, printed as `sha256:<64 lowercase hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Wraps a raw sha256 hash.
    pub const fn from_sha256(hash: [u8; 32]) -> Self {
        Digest(hash)
    }

    /// The sha256 digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Digest(Sha256::digest(data).into())
    }

    /// The raw 32 hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64-character lowercase hex part (the file name under `blobs/sha256/`).
    pub fn hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            out.push(DIGITS[(byte >> 4) as usize] as char);
            out.push(DIGITS[(byte & 0xf) as usize] as char);
        }
        out
    }

    /// Parses the bare 64-character hex part (as found in a blob file name).
    pub fn from_hex(hex: &str) -> Result<Self, DigestError> {
        let invalid = || DigestError::Invalid {
            input: hex.to_owned(),
        };
        if hex.len() != 64 {
            return Err(invalid());
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
            let high = hex_value(pair[0]).ok_or_else(invalid)?;
            let low = hex_value(pair[1]).ok_or_else(invalid)?;
            out[i] = (high << 4) | low;
        }
        Ok(Digest(out))
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input.strip_prefix("sha256:") {
            Some(hex) => Digest::from_hex(hex).map_err(|_| DigestError::Invalid {
                input: input.to_owned(),
            }),
            None => Err(DigestError::Invalid {
                input: input.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn round_trips_and_rejects() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d, Digest::of(b""));
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(Digest::from_hex(&d.hex()).unwrap(), d);
        assert!("sha512:abcd".parse::<Digest>().is_err());
        assert!(EMPTY.to_uppercase().parse::<Digest>().is_err());
        assert!("sha256:abc".parse::<Digest>().is_err());
        let err = "x".parse::<Digest>().unwrap_err().to_string();
        assert!(err.starts_with("invalid digest"), "{err}");
    }
}
