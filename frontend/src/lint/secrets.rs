//! SecretsUsedInArgOrEnv: ARG and ENV names that look like they hold a secret.
//!
//! BuildKit matches `(?i)(?:_|^)(?:apikey|auth|…|token)(?:_|$)` and lets names through that
//! also match the allow-list (`public`, `file`, `version`) the same way. Both patterns ask
//! whether an `_`-separated part of the name equals a token, which is what this does.

use super::config::CheckConfig;
use super::linter::Linter;
use super::rules;
use crate::parser::{go_quote, Span};

const SECRET_TOKENS: [&str; 10] = [
    "apikey",
    "auth",
    "credential",
    "credentials",
    "key",
    "password",
    "pword",
    "passwd",
    "secret",
    "token",
];
const ALLOWED_TOKENS: [&str; 3] = ["public", "file", "version"];

/// Warns when `key` (of an `instruction`, `ARG` or `ENV`) looks like a secret.
pub(crate) fn check(
    instruction: &str,
    key: &str,
    span: Span,
    config: &CheckConfig,
    linter: &mut Linter,
) {
    if has_token(key, &SECRET_TOKENS) && !has_token(key, &ALLOWED_TOKENS) {
        linter.run(
            config,
            &rules::SECRETS_USED_IN_ARG_OR_ENV,
            span,
            format!(
                "Do not use ARG or ENV instructions for sensitive data ({instruction} {})",
                go_quote(key)
            ),
        );
    }
}

fn has_token(key: &str, tokens: &[&str]) -> bool {
    key.split('_').any(|part| {
        let folded = fold(part);
        tokens.iter().any(|t| *t == folded)
    })
}

/// Case folding as Go's `(?i)` does it for these ASCII tokens: ASCII letters, plus the two
/// non-ASCII letters that fold onto one (`ſ` onto `s`, the Kelvin sign onto `k`).
fn fold(part: &str) -> String {
    part.chars()
        .map(|c| match c {
            '\u{17F}' => 's',
            '\u{212A}' => 'k',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_between_underscores() {
        for key in [
            "SECRET_PASSPHRASE",
            "SUPER_Secret",
            "password",
            "super_duper_secret_token",
            "auth",
            "apikey",
            "git_key",
            "\u{17F}ecret",
        ] {
            assert!(has_token(key, &SECRET_TOKENS), "{key}");
        }
        for key in ["sunflower", "keys", "monkey", "PASSWORDS", "author"] {
            assert!(!has_token(key, &SECRET_TOKENS), "{key}");
        }
        assert!(has_token("PUBLIC_KEY", &ALLOWED_TOKENS));
        assert!(has_token("AUTH_MODULE_VERSION", &ALLOWED_TOKENS));
        assert!(has_token("secret_File", &ALLOWED_TOKENS));
    }
}
