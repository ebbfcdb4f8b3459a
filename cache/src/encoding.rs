//! The byte encoding of database records.
//!
//! Main types: [`Encoder`] and [`Decoder`]. A record is a version byte followed by fields in
//! a fixed order: integers as little-endian `u64`, byte strings and text as a `u32` length
//! and the bytes, digests as their 32 raw bytes, optional fields behind a 0/1 tag.
//!
//! Key decision: hand-rolled rather than serde + a binary format crate. Records are few and
//! small, the encoding is a handful of lines per type, decoding a cache record costs no
//! allocation beyond its own fields, and the first byte makes every record self-describing:
//! a record of an unknown version is an error that names the version, never a misread.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::digest::Digest;

/// Milliseconds since the Unix epoch: how records store times.
pub fn now_millis() -> u64 {
    to_millis(SystemTime::now())
}

/// A time as milliseconds since the Unix epoch (0 for times before it).
pub fn to_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The time `millis` after the Unix epoch.
pub fn from_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

/// Why a stored record cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The record was written by a newer (or unknown) encoding.
    #[error("record version {found} is not supported (expected {supported})")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
        /// The version this code reads.
        supported: u8,
    },
    /// The record ends before its last field.
    #[error("record truncated at byte {at}")]
    Truncated {
        /// Offset where more bytes were needed.
        at: usize,
    },
    /// A text field is not UTF-8.
    #[error("record text field at byte {at} is not utf-8")]
    InvalidUtf8 {
        /// Offset of the field.
        at: usize,
    },
    /// An optional field's tag is neither 0 nor 1.
    #[error("record has invalid tag {tag} at byte {at}")]
    InvalidTag {
        /// The tag byte.
        tag: u8,
        /// Its offset.
        at: usize,
    },
    /// A field decodes but its value is not valid (a malformed id, for example).
    #[error("record field {field} has an invalid value")]
    InvalidValue {
        /// The field.
        field: &'static str,
    },
    /// Bytes follow the last field.
    #[error("record has {extra} unexpected trailing bytes")]
    Trailing {
        /// How many.
        extra: usize,
    },
}

/// Builds a record.
#[derive(Debug)]
pub struct Encoder(Vec<u8>);

impl Encoder {
    /// A record of encoding `version`.
    pub fn new(version: u8) -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.push(version);
        Encoder(buf)
    }

    /// Appends an integer.
    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// Appends a length-prefixed byte string.
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        let len = u32::try_from(value.len()).expect("record field over 4 GiB");
        self.0.extend_from_slice(&len.to_le_bytes());
        self.0.extend_from_slice(value);
        self
    }

    /// Appends a length-prefixed string.
    pub fn str(&mut self, value: &str) -> &mut Self {
        self.bytes(value.as_bytes())
    }

    /// Appends an optional string.
    pub fn opt_str(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(s) => {
                self.0.push(1);
                self.str(s)
            }
            None => {
                self.0.push(0);
                self
            }
        }
    }

    /// Appends a digest (32 raw bytes).
    pub fn digest(&mut self, value: &Digest) -> &mut Self {
        self.0.extend_from_slice(value.as_bytes());
        self
    }

    /// Appends an optional digest.
    pub fn opt_digest(&mut self, value: Option<&Digest>) -> &mut Self {
        match value {
            Some(d) => {
                self.0.push(1);
                self.digest(d)
            }
            None => {
                self.0.push(0);
                self
            }
        }
    }

    /// The encoded record.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

/// Reads a record field by field.
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    /// Starts reading `buf`, which must be of encoding `version`.
    pub fn new(buf: &'a [u8], version: u8) -> Result<Self, DecodeError> {
        match buf.first() {
            None => Err(DecodeError::Truncated { at: 0 }),
            Some(&found) if found != version => Err(DecodeError::UnsupportedVersion {
                found,
                supported: version,
            }),
            Some(_) => Ok(Decoder { buf, pos: 1 }),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(DecodeError::Truncated { at: self.pos })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn tag(&mut self) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::InvalidTag { tag, at }),
        }
    }

    /// Reads an integer.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    /// Reads a byte string.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.take(4)?;
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        self.take(len)
    }

    /// Reads a string.
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::InvalidUtf8 { at })
    }

    /// Reads an optional string.
    pub fn opt_str(&mut self) -> Result<Option<&'a str>, DecodeError> {
        if self.tag()? {
            self.str().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Reads a digest.
    pub fn digest(&mut self) -> Result<Digest, DecodeError> {
        let raw = self.take(32)?;
        Ok(Digest::from_sha256(raw.try_into().expect("32 bytes")))
    }

    /// Reads an optional digest.
    pub fn opt_digest(&mut self) -> Result<Option<Digest>, DecodeError> {
        if self.tag()? {
            self.digest().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Checks that the whole record was read.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            extra => Err(DecodeError::Trailing { extra }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let d = Digest::of(b"x");
        let bytes = Encoder::new(3)
            .u64(42)
            .str("héllo")
            .opt_str(None)
            .opt_str(Some("a"))
            .digest(&d)
            .opt_digest(Some(&d))
            .bytes(b"\0\x01")
            .finish();
        let mut r = Decoder::new(&bytes, 3).unwrap();
        assert_eq!(r.u64().unwrap(), 42);
        assert_eq!(r.str().unwrap(), "héllo");
        assert_eq!(r.opt_str().unwrap(), None);
        assert_eq!(r.opt_str().unwrap(), Some("a"));
        assert_eq!(r.digest().unwrap(), d);
        assert_eq!(r.opt_digest().unwrap(), Some(d));
        assert_eq!(r.bytes().unwrap(), b"\0\x01");
        r.finish().unwrap();
    }

    #[test]
    fn rejects_bad_records() {
        assert_eq!(
            Decoder::new(&[2], 1).unwrap_err(),
            DecodeError::UnsupportedVersion {
                found: 2,
                supported: 1
            }
        );
        assert!(Decoder::new(&[], 1).is_err());
        let mut r = Decoder::new(&[1, 5, 0], 1).unwrap();
        assert_eq!(r.u64().unwrap_err(), DecodeError::Truncated { at: 1 });
        let mut r = Decoder::new(&[1, 0xff, 0xff, 0xff, 0xff], 1).unwrap();
        assert!(matches!(r.bytes(), Err(DecodeError::Truncated { .. })));
        let mut r = Decoder::new(&[1, 7], 1).unwrap();
        assert!(matches!(
            r.opt_str(),
            Err(DecodeError::InvalidTag { tag: 7, .. })
        ));
        let r = Decoder::new(&[1, 0], 1).unwrap();
        assert_eq!(r.finish().unwrap_err(), DecodeError::Trailing { extra: 1 });
    }
}
