//! `strata check [-f Dockerfile] [CONTEXT]`: BuildKit's build checks.

use super::{dockerfile_path, Source};
use crate::report;
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;
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
    match parser::parse(&src.bytes) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            let (start, end) = e.lines();
            report::located(&src, &e.to_string(), start, end, None);
            Ok(ExitCode::FAILURE)
        }
    }
}
