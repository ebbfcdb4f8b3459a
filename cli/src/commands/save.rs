//! `strata save [-o FILE] [--format docker|oci] [--compression none|gzip|zstd]
//! [--compression-level N] [--force-compression] IMAGE...`: writes images as a `docker save`
//! archive (default; `docker load`, `podman load` and `skopeo docker-archive:` read it) or an
//! OCI layout archive, to a file or to stdout.
//!
//! Layers are stored uncompressed; `--compression` compresses them into the archive (the
//! image id stays the same, the manifest digest changes with the layer digests). Layers
//! stored compressed with another codec (loaded or pulled ones) keep their blobs unless
//! `--force-compression`, as with `--output …,compression=` in BuildKit.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use strata_worker::image::details::target_descriptor;
use strata_worker::image::names::is_id_query;
use strata_worker::image::{
    familiar_name, find_image, host_platform, save_images, save_images_to_file, ArchiveFormat,
    LayerCompression, SaveImage, SaveOptions,
};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    /// `docker save` archive.
    Docker,
    /// OCI image layout archive.
    Oci,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Codec {
    /// Layers as stored (uncompressed for images built here).
    None,
    /// gzip (what every registry and runtime reads).
    Gzip,
    /// zstd.
    Zstd,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write to a file, instead of STDOUT.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Archive format.
    #[arg(long, value_enum, default_value = "docker")]
    format: Format,
    /// Compression of the layers in the archive.
    #[arg(long, value_enum, default_value = "none")]
    compression: Codec,
    /// Compression level (gzip 0-9, default 6; zstd 1-22 and negative, default 3).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    compression_level: Option<String>,
    /// Also recompress layers stored compressed with another codec.
    #[arg(long)]
    force_compression: bool,
    /// Images to save, by name or id.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

pub fn run(args: Args, root: Option<&Path>) -> Result<ExitCode> {
    let store = crate::root::open(root)?;
    let format = match args.format {
        Format::Docker => ArchiveFormat::Docker,
        Format::Oci => ArchiveFormat::Oci,
    };
    let mut images = Vec::with_capacity(args.images.len());
    for query in &args.images {
        let record = find_image(&store, query)?;
        // Saved by id, an image carries no name, as with docker.
        let names = if is_id_query(&store, query)? {
            Vec::new()
        } else if format == ArchiveFormat::Docker {
            vec![familiar_name(&record.name)]
        } else {
            vec![record.name.clone()]
        };
        images.push(SaveImage {
            manifest: target_descriptor(&record.target),
            names,
        });
    }
    let codec = match args.compression {
        Codec::None => "uncompressed",
        Codec::Gzip => "gzip",
        Codec::Zstd => "zstd",
    };
    let compression = LayerCompression::parse(
        Some(codec),
        args.compression_level.as_deref(),
        Some(if args.force_compression {
            "true"
        } else {
            "false"
        }),
    )?;
    let options = SaveOptions {
        format,
        compression,
        platform: host_platform(),
        scratch: None,
    };
    match &args.output {
        Some(path) => {
            // Written beside the target and renamed: a failed save leaves no partial file.
            let partial = path.with_file_name(format!(
                ".{}.partial",
                path.file_name().map_or_else(
                    || "strata-save".into(),
                    |n| n.to_string_lossy().into_owned()
                )
            ));
            let file = File::create(&partial)
                .with_context(|| format!("cannot create {}", partial.display()))?;
            let result = save_images_to_file(&store, &images, &options, file)
                .map_err(anyhow::Error::from)
                .and_then(|f| f.sync_all().map_err(Into::into))
                .and_then(|()| std::fs::rename(&partial, path).map_err(Into::into));
            if let Err(e) = result {
                let _ = std::fs::remove_file(&partial);
                return Err(e.context(format!("cannot save to {}", path.display())));
            }
        }
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let mut out = save_images(&store, &images, &options, BufWriter::new(stdout.lock()))?;
            out.flush().context("cannot write to stdout")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
