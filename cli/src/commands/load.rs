//! `strata load [-i FILE]`: loads images from a `docker save` archive, an OCI archive
//! (plain or compressed) or an OCI layout directory, from a file or stdin, and prints what
//! it loaded the way `docker load` does (`Loaded image: busybox:latest`, or
//! `Loaded image ID: sha256:…` for an unnamed image).

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use strata_worker::image::{familiar_name, load_archive, load_layout, LoadedImage};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Read from tar archive file (or OCI layout directory), instead of STDIN.
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    input: Option<PathBuf>,
    /// Suppress the load output.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(args: Args, root: Option<&Path>) -> Result<ExitCode> {
    let store = crate::root::open(root)?;
    let loaded = match &args.input {
        Some(path) if path.is_dir() => {
            load_layout(&store, path).with_context(|| format!("cannot load {}", path.display()))?
        }
        Some(path) => {
            let file =
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            load_archive(&store, BufReader::with_capacity(1 << 20, file))
                .with_context(|| format!("cannot load {}", path.display()))?
        }
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            load_archive(&store, stdin.lock()).context("cannot load the archive from stdin")?
        }
    };
    if !args.quiet {
        print!("{}", report(&loaded));
    }
    Ok(ExitCode::SUCCESS)
}

fn report(loaded: &[LoadedImage]) -> String {
    let mut out = String::new();
    for image in loaded {
        if image.names.is_empty() {
            let id = image.config.unwrap_or(image.manifest.digest);
            out.push_str(&format!("Loaded image ID: {id}\n"));
        }
        for name in &image.names {
            out.push_str(&format!("Loaded image: {}\n", familiar_name(name)));
        }
    }
    out
}
