//! One module per subcommand.

pub mod build;
pub mod build_context;
pub mod check;
pub mod du;
pub mod history;
pub mod images;
pub mod inspect;
pub mod load;
pub mod parse;
pub mod prune;
pub mod pull;
pub mod push;
pub mod rmi;
pub mod save;
pub mod tag;

use anyhow::{Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// A Dockerfile read from a path or from stdin (`-`), with the name used in messages.
pub struct Source {
    pub name: String,
    pub bytes: Vec<u8>,
}

impl Source {
    pub fn read(path: &Path) -> Result<Self> {
        if path == Path::new("-") {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("failed to read Dockerfile from stdin")?;
            return Ok(Self {
                name: "Dockerfile".into(),
                bytes,
            });
        }
        let bytes = std::fs::read(path)
            .with_context(|| format!("failed to read dockerfile: open {}", path.display()))?;
        Ok(Self {
            name: path.display().to_string(),
            bytes,
        })
    }
}

/// `-f` relative to the context as `docker build` resolves it: absent → CONTEXT/Dockerfile.
pub fn dockerfile_path(file: Option<PathBuf>, context: &Path) -> PathBuf {
    match file {
        Some(f) => f,
        None => context.join("Dockerfile"),
    }
}
