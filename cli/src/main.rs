//! `strata`: the command line. Parses flags, runs the engine, renders progress and errors.
//!
//! Only this crate prints to a terminal; libraries return values and errors with locations,
//! and [`report`] turns a located error into `file:line`, the offending lines and a caret.

mod commands;
mod human;
mod progress;
mod report;
mod root;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Strata builds container images from Dockerfiles.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
struct Cli {
    /// Where Strata keeps its state [default: /var/lib/strata for root, else
    /// $XDG_DATA_HOME/strata].
    #[arg(long, global = true, env = "STRATA_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an image from a Dockerfile.
    Build(Box<commands::build::Args>),
    /// Show disk usage of the store.
    Du(commands::du::Args),
    /// Remove build cache.
    Prune(commands::prune::Args),
    /// Parse a Dockerfile; with --dump print the AST in BuildKit's test dump format.
    Parse(commands::parse::Args),
    /// Run BuildKit's build checks (lint rules) on a Dockerfile.
    Check(commands::check::Args),
    /// List images.
    Images(commands::images::Args),
    /// Load images from a tar archive or STDIN.
    Load(commands::load::Args),
    /// Download an image from a registry.
    Pull(commands::pull::Args),
    /// Upload an image to a registry.
    Push(commands::push::Args),
    /// Save images to a tar archive (streamed to STDOUT by default).
    Save(commands::save::Args),
    /// Display detailed information on images.
    Inspect(commands::inspect::Args),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(commands::tag::Args),
    /// Remove images.
    Rmi(commands::rmi::Args),
    /// Show the history of an image.
    History(commands::history::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(args) => commands::build::run(*args, cli.root.as_deref()),
        Command::Du(args) => commands::du::run(args, cli.root.as_deref()),
        Command::Prune(args) => commands::prune::run(args, cli.root.as_deref()),
        Command::Parse(args) => commands::parse::run(args),
        Command::Check(args) => commands::check::run(args),
        Command::Images(args) => commands::images::run(args, cli.root.as_deref()),
        Command::Load(args) => commands::load::run(args, cli.root.as_deref()),
        Command::Pull(args) => commands::pull::run(args, cli.root.as_deref()),
        Command::Push(args) => commands::push::run(args, cli.root.as_deref()),
        Command::Save(args) => commands::save::run(args, cli.root.as_deref()),
        Command::Inspect(args) => commands::inspect::run(args, cli.root.as_deref()),
        Command::Tag(args) => commands::tag::run(args, cli.root.as_deref()),
        Command::Rmi(args) => commands::rmi::run(args, cli.root.as_deref()),
        Command::History(args) => commands::history::run(args, cli.root.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            report::error(&err);
            ExitCode::FAILURE
        }
    }
}
