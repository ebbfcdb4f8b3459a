//! Canonical JSON encoding, byte-compatible with Go's `encoding/json`.
//!
//! Image configs, manifests and indexes are content-addressed, so the same value must
//! always encode to the same bytes. These functions fix the encoding: struct fields in
//! declaration order, map keys sorted (callers use `BTreeMap`), no trailing newline, and
//! strings escaped the way Go's `json.Marshal` escapes them (`<`, `>`, `&`, U+2028 and
//! U+2029 as `\u003c`, `\u003e`, `\u0026`, `\u2028`, `\u2029`). Output therefore matches
//! what BuildKit and containerd write for the same value: [`to_vec`] is `json.Marshal`,
//! [`to_vec_pretty`] is `json.MarshalIndent(v, "", "  ")`.

use serde::Serialize;

/// Errors encoding canonical JSON.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// A serializer reported an error (e.g. a map with non-string keys).
    #[error("cannot encode {what} as json: {source}")]
    Encode {
        /// The type of value being encoded.
        what: &'static str,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
}

/// Compact canonical JSON (Go's `json.Marshal`).
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, JsonError> {
    let bytes = serde_json::to_vec(value).map_err(|source| JsonError::Encode {
        what: std::any::type_name::<T>(),
        source,
    })?;
    Ok(escape_like_go(bytes))
}

/// Indented canonical JSON (Go's `json.MarshalIndent(v, "", "  ")`).
pub fn to_vec_pretty<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, JsonError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| JsonError::Encode {
        what: std::any::type_name::<T>(),
        source,
    })?;
    Ok(escape_like_go(bytes))
}

/// Deserializes `null` as the type's default, as Go does for nil slices and maps.
///
/// Use with `#[serde(default, deserialize_with = "null_as_default")]` on fields that Go
/// writes as `null` when empty (e.g. `"Env": null` in configs written by old Docker).
pub fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    use serde::Deserialize as _;
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Applies Go's HTML-safe escaping to serde_json output.
///
/// In serialized JSON these characters can only occur inside strings (they are never
/// structural), so a byte-level rewrite is exact.
fn escape_like_go(bytes: Vec<u8>) -> Vec<u8> {
    let needs = bytes
        .windows(3)
        .any(|w| w[0] == 0xe2 && w[1] == 0x80 && (w[2] == 0xa8 || w[2] == 0xa9))
        || bytes.iter().any(|&b| matches!(b, b'<' | b'>' | b'&'));
    if !needs {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            0xe2 if i + 2 < bytes.len() && bytes[i + 1] == 0x80 && bytes[i + 2] == 0xa8 => {
                out.extend_from_slice(b"\\u2028");
                i += 2;
            }
            0xe2 if i + 2 < bytes.len() && bytes[i + 1] == 0x80 && bytes[i + 2] == 0xa9 => {
                out.extend_from_slice(b"\\u2029");
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn escapes_like_go() {
        let mut m = BTreeMap::new();
        m.insert("b", "<a href=\"x\">&amp;</a>\u{2028}\u{2029}é\n\u{1}");
        m.insert("a", "plain");
        let out = String::from_utf8(to_vec(&m).unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"a":"plain","b":"\u003ca href=\"x\"\u003e\u0026amp;\u003c/a\u003e\u2028\u2029é\n\u0001"}"#
        );
    }

    #[test]
    fn pretty_matches_marshal_indent() {
        #[derive(Serialize)]
        struct S {
            a: u32,
            b: Vec<u32>,
            c: BTreeMap<String, u32>,
            d: Vec<u32>,
        }
        let s = S {
            a: 1,
            b: vec![2, 3],
            c: BTreeMap::new(),
            d: vec![],
        };
        let out = String::from_utf8(to_vec_pretty(&s).unwrap()).unwrap();
        assert_eq!(
            out,
            "{\n  \"a\": 1,\n  \"b\": [\n    2,\n    3\n  ],\n  \"c\": {},\n  \"d\": []\n}"
        );
    }
}
