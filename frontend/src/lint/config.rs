//! The `# check=` directive: which rules are skipped, which experimental rules run, and whether
//! a violation fails the check. Parsed as BuildKit's `linter.ParseLintOptions`; a `# check=`
//! comment right above an instruction adds to the file's settings for that instruction only.

use super::platform::Platform;
use super::rules::Rule;
use crate::parser::{self, go_quote};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Settings from a `check` directive value such as `skip=Rule1,Rule2;error=true`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    /// `skip=all`.
    pub skip_all: bool,
    /// `skip=Rule1,Rule2`.
    pub skip_rules: Vec<String>,
    /// `experimental=all`.
    pub experimental_all: bool,
    /// `experimental=Rule1,Rule2`.
    pub experimental_rules: Vec<String>,
    /// `error=true`: any warning fails the check.
    pub error: bool,
}

/// A `check` directive value that could not be parsed. The text is BuildKit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckConfigError {
    /// A part without `=`, or an unknown key.
    #[error("invalid check option {}", go_quote(.0))]
    InvalidOption(String),
    /// `error=` with something `strconv.ParseBool` rejects.
    #[error(
        "failed to parse check option {}: strconv.ParseBool: parsing {}: invalid syntax",
        go_quote(option),
        go_quote(value)
    )]
    InvalidBool {
        /// The whole `error=…` part.
        option: String,
        /// The value, trimmed.
        value: String,
    },
}

/// The file's `# check=` directive could not be parsed; the check cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to parse check options: {source}")]
pub struct ConfigError {
    /// Line of the directive.
    pub line: usize,
    /// What was wrong with it.
    #[source]
    pub source: CheckConfigError,
}

impl CheckConfig {
    /// Parses a directive value (`skip=…;experimental=…;error=…`). At most three `;`-separated
    /// parts are read; as in BuildKit, the third keeps any further `;` in its value.
    pub fn parse(value: &str) -> Result<Self, CheckConfigError> {
        let value = value.trim();
        let mut config = Self::default();
        if value.is_empty() {
            return Ok(config);
        }
        for part in value.splitn(3, ';') {
            let Some((key, v)) = part.split_once('=') else {
                return Err(CheckConfigError::InvalidOption(part.to_string()));
            };
            let v = v.trim();
            match key.trim() {
                "skip" if v == "all" => config.skip_all = true,
                "skip" => config.skip_rules = rule_list(v),
                "experimental" if v == "all" => config.experimental_all = true,
                "experimental" => config.experimental_rules = rule_list(v),
                "error" => {
                    config.error = parse_bool(v).ok_or_else(|| CheckConfigError::InvalidBool {
                        option: part.to_string(),
                        value: v.to_string(),
                    })?;
                }
                other => return Err(CheckConfigError::InvalidOption(other.to_string())),
            }
        }
        Ok(config)
    }

    /// Whether `rule` reports under these settings. Experimental rules ignore `skip` and run
    /// only when enabled; the others run unless skipped.
    pub fn enables(&self, rule: &Rule) -> bool {
        if rule.experimental {
            self.experimental_all || self.experimental_rules.iter().any(|r| r == rule.name)
        } else {
            !(self.skip_all || self.skip_rules.iter().any(|r| r == rule.name))
        }
    }

    /// These settings plus those of the first `check=` among an instruction's comments
    /// (BuildKit's `WithMergedConfigFromComments`): skips and experimental rules add up,
    /// `error` stays the file's. A comment that does not parse changes nothing.
    pub fn with_comments(&self, comments: &[String]) -> Cow<'_, Self> {
        let Some(value) = comments.iter().find_map(|c| check_comment(c)) else {
            return Cow::Borrowed(self);
        };
        let first_word = value.split(' ').next().unwrap_or_default();
        let Ok(other) = Self::parse(first_word) else {
            return Cow::Borrowed(self);
        };
        let mut merged = self.clone();
        merged.skip_all |= other.skip_all;
        merged.skip_rules.extend(other.skip_rules);
        merged.experimental_all |= other.experimental_all;
        merged.experimental_rules.extend(other.experimental_rules);
        Cow::Owned(merged)
    }
}

fn rule_list(v: &str) -> Vec<String> {
    v.split(',').map(|r| r.trim().to_string()).collect()
}

/// Go's `strconv.ParseBool`.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The value of a comment that reads as a `check` directive (`check = value`), matched as
/// BuildKit's directive regexp `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` does.
fn check_comment(comment: &str) -> Option<&str> {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{0C}' | '\r');
    let text = comment.trim_start_matches(char::is_whitespace);
    let name_len = text
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(text.len(), |(i, _)| i);
    let (name, rest) = text.split_at(name_len);
    if !name.eq_ignore_ascii_case("check") {
        return None;
    }
    let rest = rest.trim_start_matches(is_space).strip_prefix('=')?;
    let value = rest.trim_matches(is_space);
    // `.+?` needs one character: a value of white space only keeps one of it.
    match (value.is_empty(), rest.is_empty()) {
        (false, _) => Some(value),
        (true, false) => Some(" "),
        (true, true) => None,
    }
}

/// Everything [`check`](super::check) needs besides the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOptions {
    /// Settings from the file's `# check=` directive.
    pub config: CheckConfig,
    /// The build and target platform (`BUILDPLATFORM`, `TARGETPLATFORM`, …); the host's by
    /// default, as for a build without `--platform`.
    pub platform: Platform,
    /// The environment (`KEY=VALUE` entries) of base images, by the name written in FROM
    /// after ARG expansion. A base image not listed is taken to set only `PATH` (see the
    /// module documentation).
    pub image_env: BTreeMap<String, Vec<String>>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self::with_config(CheckConfig::default())
    }
}

impl CheckOptions {
    /// Options with `config`, the host platform and no known base images.
    pub fn with_config(config: CheckConfig) -> Self {
        Self {
            config,
            platform: Platform::host(),
            image_env: BTreeMap::new(),
        }
    }

    /// Options from the `# check=` directive of a Dockerfile's bytes, found as BuildKit finds
    /// it (`#` comments at the top, after an optional `#!` line; only the value's first word).
    pub fn from_source(src: &[u8]) -> Result<Self, ConfigError> {
        let Some((first_word, _, line)) = parser::parse_directive("check", src) else {
            return Ok(Self::default());
        };
        let config = CheckConfig::parse(&first_word).map_err(|source| ConfigError {
            line: line.max(1),
            source,
        })?;
        Ok(Self::with_config(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::rules;

    #[test]
    fn parses_buildkit_option_strings() {
        let c = CheckConfig::parse(" skip = A, B ;error=True").unwrap();
        assert_eq!(c.skip_rules, ["A", "B"]);
        assert!(c.error && !c.skip_all);
        let c = CheckConfig::parse("skip=all;experimental=all").unwrap();
        assert!(c.skip_all && c.experimental_all);
        assert_eq!(CheckConfig::parse("").unwrap(), CheckConfig::default());
    }

    #[test]
    fn errors_match_buildkit() {
        let e = CheckConfig::parse("skip").unwrap_err();
        assert_eq!(e.to_string(), r#"invalid check option "skip""#);
        let e = CheckConfig::parse("skip=a;bogus=1").unwrap_err();
        assert_eq!(e.to_string(), r#"invalid check option "bogus""#);
        let e = CheckConfig::parse("error=maybe").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"failed to parse check option "error=maybe": strconv.ParseBool: parsing "maybe": invalid syntax"#
        );
        let e = CheckOptions::from_source(b"# check=error=yes\nFROM a\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e
            .to_string()
            .starts_with("failed to parse check options: failed to parse check option"));
    }

    #[test]
    fn third_part_keeps_its_semicolons() {
        let c = CheckConfig::parse("error=false;skip=A;experimental=B;C").unwrap();
        assert_eq!(c.experimental_rules, ["B;C"]);
    }

    #[test]
    fn skip_and_experimental() {
        let c = CheckConfig::parse("skip=all").unwrap();
        assert!(!c.enables(&rules::UNDEFINED_VAR));
        assert!(!c.enables(&rules::INVALID_DEFINITION_DESCRIPTION));
        let c = CheckConfig::parse("skip=all;experimental=InvalidDefinitionDescription").unwrap();
        assert!(c.enables(&rules::INVALID_DEFINITION_DESCRIPTION));
        assert!(CheckConfig::default().enables(&rules::UNDEFINED_VAR));
    }

    #[test]
    fn comments_add_to_the_file_settings() {
        let base = CheckConfig::parse("skip=A;error=true").unwrap();
        let merged = base.with_comments(&[
            "unrelated".into(),
            "check=skip=B // why".into(),
            "check=skip=C".into(),
        ]);
        assert_eq!(merged.skip_rules, ["A", "B"]);
        assert!(merged.error);
        let same = base.with_comments(&["check=bogus".into()]);
        assert!(matches!(same, Cow::Borrowed(_)));
        let same = base.with_comments(&["checks=skip=B".into(), "1check=skip=B".into()]);
        assert_eq!(same.skip_rules, ["A"]);
        assert_eq!(check_comment("CHECK = skip=all "), Some("skip=all"));
        assert_eq!(check_comment("check="), None);
    }
}
