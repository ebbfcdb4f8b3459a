//! The variables a FROM line can see: BuildKit's built-in platform args and the global ARGs
//! declared before the first FROM, with their defaults expanded in order (`buildMetaArgs`).
//! No `--build-arg` exists for a check, so every ARG has its default.

use super::platform::Platform;
use super::stages::{arg_pairs, Program};
use super::BuildError;
use crate::shell::{EnvList, Lexer};

/// ARGs that never become environment variables of a stage.
pub(crate) const NON_ENV_ARGS: [&str; 2] =
    ["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

/// The global scope of a Dockerfile.
#[derive(Debug, Clone)]
pub(crate) struct GlobalScope {
    /// Built-in args, then global ARGs that have a value (BuildKit's `globalArgs`).
    pub args: EnvList,
    /// Every global ARG name, with or without a value.
    pub declared: Vec<String>,
}

impl GlobalScope {
    /// Builds the scope; a default that fails to expand is an error at its ARG.
    pub(crate) fn new(
        program: &Program<'_>,
        lexer: &Lexer,
        platform: &Platform,
    ) -> Result<Self, BuildError> {
        let target = program
            .stages
            .last()
            .map(|s| s.name.as_str())
            .filter(|n| !n.is_empty())
            .unwrap_or("default");
        let mut args = built_in_args(platform, target);
        let mut declared = Vec::new();
        for node in &program.meta_args {
            for (key, value) in arg_pairs(node) {
                if let Some(value) = value {
                    let expanded = lexer
                        .process_word_with_matches(&value, &args)
                        .map_err(|e| BuildError::at(e.with_word(&value), node.span))?;
                    args.set(key.clone(), expanded.value);
                }
                if !declared.contains(&key) {
                    declared.push(key);
                }
            }
        }
        Ok(Self { args, declared })
    }

    /// Names a FROM may use without UndefinedArgInFrom: declared ARGs and set variables.
    pub(crate) fn known_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.declared.iter().map(String::as_str).collect();
        names.extend(self.args.keys());
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// BuildKit's `defaultArgs`: build and target platform details and the target stage.
pub(crate) fn built_in_args(platform: &Platform, target: &str) -> EnvList {
    let p = platform;
    EnvList::from_entries([
        format!("BUILDPLATFORM={}", p.format()),
        format!("BUILDOS={}", p.os),
        format!("BUILDOSVERSION={}", p.os_version),
        format!("BUILDARCH={}", p.architecture),
        format!("BUILDVARIANT={}", p.variant),
        format!("TARGETPLATFORM={}", p.format_all()),
        format!("TARGETOS={}", p.os),
        format!("TARGETOSVERSION={}", p.os_version),
        format!("TARGETARCH={}", p.architecture),
        format!("TARGETVARIANT={}", p.variant),
        format!("TARGETSTAGE={target}"),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::{config::CheckConfig, linter::Linter, stages};
    use crate::parser::parse;
    use crate::shell::Env;

    #[test]
    fn global_args_expand_in_order() {
        let file = parse(b"ARG A=1\nARG B=${A}2 C\nARG A=x$A\nFROM s AS last\n").unwrap();
        let mut linter = Linter::default();
        let program = stages::split(&file, &CheckConfig::default(), &mut linter).unwrap();
        let platform = Platform::parse("linux/arm64").unwrap();
        let scope = GlobalScope::new(&program, &Lexer::new('\\'), &platform).unwrap();
        assert_eq!(scope.args.get("B"), Some("12"));
        assert_eq!(scope.args.get("A"), Some("x1"));
        assert_eq!(scope.args.get("C"), None);
        assert_eq!(scope.args.get("TARGETPLATFORM"), Some("linux/arm64"));
        assert_eq!(scope.args.get("TARGETSTAGE"), Some("last"));
        assert_eq!(scope.declared, ["A", "B", "C"]);
        assert!(scope.known_names().contains(&"C"));
    }

    #[test]
    fn a_bad_default_is_an_error_at_its_arg() {
        let file = parse(b"ARG A=${B:?oops}\nFROM s\n").unwrap();
        let mut linter = Linter::default();
        let program = stages::split(&file, &CheckConfig::default(), &mut linter).unwrap();
        let err = GlobalScope::new(&program, &Lexer::new('\\'), &Platform::host()).unwrap_err();
        assert_eq!(err.message, r#"failed to process "${B:?oops}": B: oops"#);
        assert_eq!(err.span.map(|s| s.start_line), Some(1));
    }
}
