//! `strata parse [--dump] DOCKERFILE`.

use super::Source;
use crate::report;
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;
use strata_frontend::{instructions, parser};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the AST in BuildKit's parser-test dump format.
    #[arg(long)]
    dump: bool,
    /// The Dockerfile (`-` for stdin).
    dockerfile: PathBuf,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let src = Source::read(&args.dockerfile)?;
    let file = match parser::parse(&src.bytes) {
        Ok(file) => file,
        Err(e) => {
            let (start, end) = e.lines();
            report::located(&src, &e.to_string(), start, end, None);
            return Ok(ExitCode::FAILURE);
        }
    };
    for w in &file.warnings {
        report::warning(&src, &w.short, w.span.start_line);
    }
    // Typing every instruction catches what BuildKit reports before a build starts.
    let stages = match instructions::parse_stages(&file) {
        Ok((stages, _)) => stages,
        Err(e) => {
            let span = e.span().unwrap_or_default();
            let column = (span.column > 0).then_some(span.column);
            report::located(
                &src,
                &e.inner().to_string(),
                span.start_line,
                span.end_line,
                column,
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    if args.dump {
        print!("{}", parser::dump(&file));
    } else {
        println!(
            "{}: {} instructions in {} stages",
            src.name,
            file.nodes.len(),
            stages.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
