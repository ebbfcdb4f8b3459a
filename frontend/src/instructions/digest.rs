//! Content digests (`sha256:…`) as `go-digest`'s `Parse` validates them, for
//! `ADD --checksum` on HTTP sources.

/// Checks `s` is `algorithm:hex` with a supported algorithm and the right length;
/// errors are go-digest's texts.
pub fn validate_digest(s: &str) -> Result<(), String> {
    const FORMAT: &str = "invalid checksum digest format";
    let Some(i) = s.find(':') else {
        return Err(FORMAT.to_string());
    };
    if i == 0 || i + 1 == s.len() {
        return Err(FORMAT.to_string());
    }
    let (algorithm, hex) = (&s[..i], &s[i + 1..]);
    let size = match algorithm {
        "sha256" => 32,
        "sha384" => 48,
        "sha512" => 64,
        _ => {
            // go-digest's general grammar decides between "bad format" and "unsupported".
            let alg_ok = algorithm.split(['+', '.', '_', '-']).all(|c| {
                !c.is_empty()
                    && c.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
            let enc_ok = hex
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
            return Err(if alg_ok && enc_ok {
                "unsupported digest algorithm".to_string()
            } else {
                FORMAT.to_string()
            });
        }
    };
    if hex.len() != size * 2 {
        return Err("invalid checksum digest length".to_string());
    }
    if !hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(FORMAT.to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        let zeros = "0".repeat(64);
        assert_eq!(validate_digest(&format!("sha256:{zeros}")), Ok(()));
        assert_eq!(
            validate_digest("sha256:abc").unwrap_err(),
            "invalid checksum digest length"
        );
        assert_eq!(
            validate_digest("md5:abc").unwrap_err(),
            "unsupported digest algorithm"
        );
        assert_eq!(
            validate_digest("nocolon").unwrap_err(),
            "invalid checksum digest format"
        );
        assert_eq!(
            validate_digest(&format!("sha256:{}", "A".repeat(64))).unwrap_err(),
            "invalid checksum digest format"
        );
    }
}
