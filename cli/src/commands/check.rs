//! `strata check [-f Dockerfile] [CONTEXT]`: BuildKit's build checks, printed the way
//! `docker buildx build --check` prints them.
//!
//! Each warning: `WARNING: Rule - URL`, the rule's description, the message, and the
//! Dockerfile lines concerned; then a summary line. The exit status is 1 when the check fails
//! (`# check=error=true` and a warning, an error a build would stop at, an invalid `# check=`
//! directive or a file that does not parse), 0 otherwise.

use super::{dockerfile_path, Source};
use crate::report;
use anyhow::Result;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use strata_frontend::lint::{self, CheckOptions, Report, Warning};
use strata_frontend::parser;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile).
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// The build context directory.
    #[arg(default_value = ".")]
    context: PathBuf,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let path = dockerfile_path(args.file, &args.context);
    let src = Source::read(&path)?;
    // As in BuildKit, the directive is read before the file is parsed.
    let options = match CheckOptions::from_source(&src.bytes) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let file = match parser::parse(&src.bytes) {
        Ok(file) => file,
        Err(e) => {
            let (start, end) = e.lines();
            report::located(&src, &e.to_string(), start, end, None);
            return Ok(ExitCode::FAILURE);
        }
    };
    let outcome = lint::check(&file, &options);
    print!("{}", render_warnings(&src, &outcome));
    if let Some(error) = &outcome.error {
        let mut text = format!("ERROR: {}\n", error.message);
        if let Some(span) = error.span {
            text.push_str(&report::source_block(&src, span.start_line, span.end_line));
        }
        eprint!("{text}");
        return Ok(ExitCode::FAILURE);
    }
    if let Some(violation) = outcome.violation() {
        eprintln!("ERROR: {violation}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The warnings and the summary line (no summary of "no warnings" when the check stopped at
/// an error, as buildx does).
fn render_warnings(src: &Source, outcome: &Report) -> String {
    let mut out = String::new();
    for warning in &outcome.warnings {
        out.push_str(&render_warning(src, warning));
    }
    match outcome.warnings.len() {
        0 if outcome.error.is_some() => {}
        0 => out.push_str("Check complete, no warnings found.\n"),
        1 => out.push_str("\nCheck complete, 1 warning has been found!\n"),
        n => {
            let _ = writeln!(out, "\nCheck complete, {n} warnings have been found!");
        }
    }
    out
}

fn render_warning(src: &Source, w: &Warning) -> String {
    let mut out = format!("\nWARNING: {}", w.rule);
    if !w.url.is_empty() {
        let _ = write!(out, " - {}", w.url);
    }
    let _ = writeln!(out, "\n{}\n{}", w.description, w.message);
    out.push_str(&report::source_block(
        src,
        w.span.start_line,
        w.span.end_line,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> Source {
        Source {
            name: "Dockerfile".into(),
            bytes: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn warning_block() {
        let s = src("FROM scratch\nMAINTAINER me\n");
        let file = parser::parse(&s.bytes).unwrap();
        let outcome = lint::check(&file, &CheckOptions::default());
        let text = render_warnings(&s, &outcome);
        assert!(text.starts_with(
            "\nWARNING: MaintainerDeprecated - https://docs.docker.com/go/dockerfile/rule/maintainer-deprecated/\n\
             The MAINTAINER instruction is deprecated, use a label instead to define an image author\n\
             Maintainer instruction is deprecated in favor of using label\n\
             Dockerfile:2\n--------------------\n   1 |     FROM scratch\n   2 | >>> MAINTAINER me\n"
        ), "{text}");
        assert!(
            text.ends_with("\nCheck complete, 1 warning has been found!\n"),
            "{text}"
        );
    }

    #[test]
    fn clean_summary() {
        let s = src("FROM scratch\n");
        let file = parser::parse(&s.bytes).unwrap();
        let outcome = lint::check(&file, &CheckOptions::default());
        assert_eq!(
            render_warnings(&s, &outcome),
            "Check complete, no warnings found.\n"
        );
    }
}
