//! `strata`: the command line. Parses flags, runs the engine, renders progress and errors.
//!
//! Only this crate prints to a terminal; libraries return values and errors with locations,
//! and [`report`] turns a located error into `file:line`, the offending lines and a caret.

mod commands;
mod report;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Strata builds container images from Dockerfiles.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse a Dockerfile; with --dump print the AST in BuildKit's test dump format.
    Parse(commands::parse::Args),
    /// Run BuildKit's build checks (lint rules) on a Dockerfile.
    Check(commands::check::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Parse(args) => commands::parse::run(args),
        Command::Check(args) => commands::check::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            report::error(&err);
            ExitCode::FAILURE
        }
    }
}
