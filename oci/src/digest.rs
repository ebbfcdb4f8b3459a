//! Content digests (`sha256:<64 hex>`) and streaming hashers.
//!
//! Every blob in an OCI image — layer, config, manifest, index — is named by the sha256 of
//! its bytes. [`Digest`] is that name: parsed and validated strictly (only `sha256`, exactly
//! 64 lowercase hex digits), printed as `sha256:<hex>`, and (de)serialized as that string.
//!
//! [`HashingWriter`] and [`HashingReader`] wrap any writer or reader and compute the sha256
//! and the byte count of everything that passes through, so a blob is hashed in the same
//! pass that stores or sends it.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// The only algorithm Strata accepts in digests.
pub const SHA256: &str = "sha256";

/// Why a string is not a valid digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `algorithm:` prefix.
    #[error("invalid digest {input:?}: missing algorithm prefix (expected sha256:<hex>)")]
    MissingAlgorithm {
        /// The rejected input.
        input: String,
    },
    /// An algorithm other than sha256 (sha512, blake3, …).
    #[error("unsupported digest algorithm {algorithm:?} in {input:?} (only sha256 is supported)")]
    UnsupportedAlgorithm {
        /// The rejected input.
        input: String,
        /// The algorithm it named.
        algorithm: String,
    },
    /// The encoded part is not 64 characters long.
    #[error("invalid sha256 digest {input:?}: expected 64 hex digits, found {length}")]
    InvalidLength {
        /// The rejected input.
        input: String,
        /// How many characters the encoded part has.
        length: usize,
    },
    /// The encoded part has a character outside `[0-9a-f]`.
    #[error("invalid sha256 digest {input:?}: encoded part must be lowercase hex")]
    InvalidHex {
        /// The rejected input.
        input: String,
    },
}

/// A sha256 content digest, printed as `sha256:<64 lowercase hex>`.
///
/// Stored as the 32 raw bytes, so it is `Copy`, cheap to hash and to compare, and always
/// valid once constructed.
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

    /// The algorithm name, always `sha256`.
    pub fn algorithm(&self) -> &'static str {
        SHA256
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
        parse_hex(hex, || format!("{SHA256}:{hex}"))
    }
}

fn parse_hex(hex: &str, input: impl Fn() -> String) -> Result<Digest, DigestError> {
    if hex.len() != 64 {
        return Err(DigestError::InvalidLength {
            input: input(),
            length: hex.chars().count(),
        });
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
        let high = hex_value(pair[0]).ok_or_else(|| DigestError::InvalidHex { input: input() })?;
        let low = hex_value(pair[1]).ok_or_else(|| DigestError::InvalidHex { input: input() })?;
        out[i] = (high << 4) | low;
    }
    Ok(Digest(out))
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
        let Some((algorithm, encoded)) = input.split_once(':') else {
            return Err(DigestError::MissingAlgorithm {
                input: input.to_owned(),
            });
        };
        if algorithm != SHA256 {
            return Err(DigestError::UnsupportedAlgorithm {
                input: input.to_owned(),
                algorithm: algorithm.to_owned(),
            });
        }
        parse_hex(encoded, || input.to_owned())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SHA256}:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An incremental sha256 with a byte count: the state shared by the hashing adapters.
#[derive(Clone, Default)]
pub struct Hasher {
    state: Sha256,
    count: u64,
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("count", &self.count)
            .finish()
    }
}

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.state.update(data);
        self.count += data.len() as u64;
    }

    /// Bytes fed so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The digest of everything fed so far (the hasher stays usable).
    pub fn digest(&self) -> Digest {
        Digest(self.state.clone().finalize().into())
    }

    /// The digest and byte count, consuming the hasher.
    pub fn finish(self) -> (Digest, u64) {
        (Digest(self.state.finalize().into()), self.count)
    }
}

/// A [`Write`] adapter that hashes and counts every byte written through it.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// Bytes written so far.
    pub fn count(&self) -> u64 {
        self.hasher.count()
    }

    /// Digest of the bytes written so far.
    pub fn digest(&self) -> Digest {
        self.hasher.digest()
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The inner writer, mutably (bytes written to it directly are not hashed).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Returns the inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        let (digest, count) = self.hasher.finish();
        (self.inner, digest, count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A [`Read`] adapter that hashes and counts every byte read through it.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.hasher.count()
    }

    /// Digest of the bytes read so far.
    pub fn digest(&self) -> Digest {
        self.hasher.digest()
    }

    /// Reads the rest of the stream (hashing it) and discards it; returns how many bytes
    /// that was.
    pub fn drain(&mut self) -> io::Result<u64> {
        io::copy(self, &mut io::sink())
    }

    /// Returns the inner reader, the digest and the byte count.
    pub fn finish(self) -> (R, Digest, u64) {
        let (digest, count) = self.hasher.finish();
        (self.inner, digest, count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digest_of_empty_input() {
        assert_eq!(Digest::of(b"").to_string(), EMPTY);
    }

    #[test]
    fn parse_round_trips() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d.hex(), &EMPTY[7..]);
        assert_eq!(Digest::from_hex(&EMPTY[7..]).unwrap(), d);
        assert_eq!(d.algorithm(), "sha256");
    }

    #[test]
    fn rejects_bad_digests() {
        assert!(matches!(
            "e3b0".parse::<Digest>(),
            Err(DigestError::MissingAlgorithm { .. })
        ));
        assert!(matches!(
            format!("sha512:{}", &EMPTY[7..]).parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm { algorithm, .. }) if algorithm == "sha512"
        ));
        assert!(matches!(
            "sha256:abcd".parse::<Digest>(),
            Err(DigestError::InvalidLength { length: 4, .. })
        ));
        assert!(matches!(
            EMPTY
                .to_uppercase()
                .replace("SHA256", "sha256")
                .parse::<Digest>(),
            Err(DigestError::InvalidHex { .. })
        ));
        let err = "sha256:zz".parse::<Digest>().unwrap_err().to_string();
        assert!(err.starts_with("invalid sha256 digest"), "{err}");
        assert!(!err.ends_with('.'));
    }

    #[test]
    fn serde_as_string() {
        let d: Digest = EMPTY.parse().unwrap();
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{EMPTY}\""));
        let back: Digest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        assert!(serde_json::from_str::<Digest>("\"md5:abc\"").is_err());
    }

    #[test]
    fn hashing_adapters_hash_and_count() {
        let data = b"hello world".repeat(1000);
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let (out, digest, count) = w.finish();
        assert_eq!(out, data);
        assert_eq!(count, data.len() as u64);
        assert_eq!(digest, Digest::of(&data));

        let mut r = HashingReader::new(&data[..]);
        let mut first = [0u8; 10];
        r.read_exact(&mut first).unwrap();
        assert_eq!(r.drain().unwrap(), data.len() as u64 - 10);
        let (_, digest, count) = r.finish();
        assert_eq!(digest, Digest::of(&data));
        assert_eq!(count, data.len() as u64);
    }
}
