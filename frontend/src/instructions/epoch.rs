//! `SOURCE_DATE_EPOCH` (build arg or meta ARG): a Unix time, `context`, or the name of a
//! stage that is a single remote ADD on scratch, as BuildKit's `epoch.go` accepts it.
//! Resolving `context` or a stage to a time needs the sources, so it is left to the caller.

use super::digest::validate_digest;
use super::git_ref::{is_http_source, parse_git_ref};
use super::{Error, Instruction, Stage};
use crate::shell::{EnvList, Lexer};
use std::collections::BTreeMap;

/// Where the build's timestamp comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceDateEpoch {
    /// Seconds since the epoch.
    Unix(i64),
    /// The newest file time of the build context.
    Context,
    /// The stage at this index: a single HTTP(S) or Git ADD whose time is used.
    Stage(usize),
}

/// Reads the value BuildKit found for `SOURCE_DATE_EPOCH`.
pub(super) fn resolve_epoch(
    value: &str,
    stages: &[Stage],
    global_args: &EnvList,
    build_args: &BTreeMap<String, String>,
    lexer: &Lexer,
) -> Result<Option<SourceDateEpoch>, Error> {
    if value.is_empty() {
        return Ok(None);
    }
    if let Ok(seconds) = value.parse::<i64>() {
        return Ok(Some(SourceDateEpoch::Unix(seconds)));
    }
    if value == "context" {
        return Ok(Some(SourceDateEpoch::Context));
    }
    for (i, stage) in stages.iter().enumerate() {
        if stage.name().is_some_and(|n| n.eq_ignore_ascii_case(value)) {
            let mut args = EnvList::new();
            for key in global_args.keys().filter(|k| *k != "SOURCE_DATE_EPOCH") {
                args.set(key, crate::shell::Env::get(global_args, key).unwrap_or(""));
            }
            check_source_stage(stage, &args, build_args, lexer).map_err(|message| {
                Error::SourceDateEpochStage {
                    message,
                    span: stage.span(),
                }
            })?;
            return Ok(Some(SourceDateEpoch::Stage(i)));
        }
    }
    Err(Error::SourceDateEpoch {
        value: value.to_string(),
    })
}

fn check_source_stage(
    stage: &Stage,
    global_args: &EnvList,
    build_args: &BTreeMap<String, String>,
    lexer: &Lexer,
) -> Result<(), String> {
    let base = lexer
        .process_word(stage.base_name(), global_args)
        .map_err(|e| {
            format!(
                "failed to process source stage base name {}: {}",
                super::go_format::go_quote(stage.base_name()),
                e.with_word(stage.base_name())
            )
        })?;
    if base != "scratch" {
        return Err("SOURCE_DATE_EPOCH stage must use FROM scratch".to_string());
    }
    let mut env = global_args.clone();
    let mut found_add = false;
    for instruction in &stage.instructions {
        match instruction {
            Instruction::Arg(arg) => {
                for def in &arg.args {
                    if let Some(v) = build_args.get(&def.key) {
                        env.set(def.key.clone(), v.clone());
                        continue;
                    }
                    let Some(default) = &def.value else { continue };
                    let v = lexer.process_word(default, &env).map_err(|e| e.with_word(default))?;
                    env.set(def.key.clone(), v);
                }
            }
            Instruction::Add(add) => {
                if found_add {
                    return Err("SOURCE_DATE_EPOCH stage must contain exactly one remote ADD".to_string());
                }
                found_add = true;
                let [source] = add.files.paths.as_slice() else {
                    return Err("SOURCE_DATE_EPOCH stage must contain exactly one remote ADD source".to_string());
                };
                if !add.files.contents.is_empty() {
                    return Err("SOURCE_DATE_EPOCH stage must contain exactly one remote ADD source".to_string());
                }
                let src = lexer.process_word(source, &env).map_err(|e| e.with_word(source))?;
                let checksum = match &add.checksum {
                    Some(c) => Some(lexer.process_word(c, &env).map_err(|e| e.with_word(c))?),
                    None => None,
                };
                if is_http_source(&src) {
                    if let Some(c) = checksum {
                        validate_digest(&c)?;
                    }
                    continue;
                }
                match parse_git_ref(&src) {
                    Ok(git) if !git.indistinguishable_from_local => {}
                    Err(e) if e.is_git => return Err(e.message),
                    _ => {
                        return Err("SOURCE_DATE_EPOCH stage source must be a single HTTP(S) or Git ADD".to_string())
                    }
                }
            }
            other => {
                return Err(format!(
                    "SOURCE_DATE_EPOCH stage does not meet source-only requirements: unsupported {} instruction",
                    other.origin().keyword
                ))
            }
        }
    }
    if !found_add {
        return Err("SOURCE_DATE_EPOCH stage must contain exactly one remote ADD".to_string());
    }
    Ok(())
}
