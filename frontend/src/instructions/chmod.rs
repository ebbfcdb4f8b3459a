//! `--chmod` values of COPY/ADD: an octal mode up to `07777`, or a symbolic mode as
//! chmod(1) writes it (`u+x`, `go-w`, `u=rwx,go=rx`), which current BuildKit accepts.

use super::{Error, Span};

/// A valid `--chmod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// Octal permission bits (≤ `0o7777`).
    Octal(u32),
    /// A symbolic mode, applied relative to each file's mode.
    Symbolic(String),
}

/// Checks a `--chmod` value like BuildKit's `dispatchCopy`: octal first; otherwise a
/// symbolic mode, except that anything starting with a digit is reported as a bad octal.
pub fn validate_chmod(value: &str, span: Span) -> Result<Chmod, Error> {
    let invalid = || Error::InvalidChmod {
        value: value.to_string(),
        span,
    };
    if !value.is_empty() && value.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return match u32::from_str_radix(value, 8) {
            Ok(mode) if mode <= 0o7777 => Ok(Chmod::Octal(mode)),
            _ => Err(invalid()),
        };
    }
    if value.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return Err(invalid());
    }
    if is_symbolic_mode(value) {
        Ok(Chmod::Symbolic(value.to_string()))
    } else {
        Err(Error::ChmodSyntax { span })
    }
}

/// The grammar BSD `setmode` (and its Go port BuildKit uses) accepts:
/// `clause[,clause…]`, clause = `[ugoa]* (op perms*)+`, op = `+ - =`,
/// perms = letters of `rwxXst` or one of `ugo` (copy another class's bits).
fn is_symbolic_mode(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    loop {
        // who
        while i < bytes.len() && matches!(bytes[i], b'a' | b'u' | b'g' | b'o') {
            i += 1;
        }
        if i >= bytes.len() {
            return false;
        }
        // one or more (op perms*)
        loop {
            if !matches!(bytes.get(i), Some(b'+' | b'-' | b'=')) {
                return false;
            }
            i += 1;
            while i < bytes.len()
                && matches!(
                    bytes[i],
                    b'r' | b'w' | b'x' | b'X' | b's' | b't' | b'u' | b'g' | b'o'
                )
            {
                i += 1;
            }
            match bytes.get(i) {
                None => return true,
                Some(b',') => {
                    i += 1;
                    break;
                }
                Some(_) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(v: &str) -> Result<Chmod, String> {
        validate_chmod(v, Span::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn octal() {
        assert_eq!(check("755"), Ok(Chmod::Octal(0o755)));
        assert_eq!(check("0"), Ok(Chmod::Octal(0)));
        assert_eq!(check("07777"), Ok(Chmod::Octal(0o7777)));
        for bad in ["64a", "10000", "8", "0799", "99999999999999"] {
            assert_eq!(
                check(bad).unwrap_err(),
                format!("invalid chmod parameter: '{bad}'. it should be octal string and between 0 and 07777")
            );
        }
    }

    #[test]
    fn symbolic() {
        for good in [
            "u+x",
            "go-w",
            "u=rwx,go=rx",
            "=rw,+X",
            "+X",
            "go=",
            "go=u-w",
            "a+rwx",
            "u+s",
            "o+t",
            "u=g",
        ] {
            assert_eq!(check(good), Ok(Chmod::Symbolic(good.to_string())), "{good}");
        }
        for bad in ["abc", "u", "u+x,", "+1", "u+q", "x", ",u+x", "-"] {
            if bad == "-" {
                // `-` alone: op with no perms is fine for setmode.
                assert!(check(bad).is_ok());
                continue;
            }
            assert_eq!(check(bad).unwrap_err(), "invalid syntax", "{bad}");
        }
    }
}
