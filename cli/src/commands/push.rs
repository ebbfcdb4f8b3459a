//! `strata push [--compression gzip|zstd|uncompressed] [--compression-level N]
//! [--force-compression] [--insecure-registry HOST]... NAME`: uploads a stored image to the
//! registry its name points at, as `docker push` does.
//!
//! Also what `build` uses to push: [`push_all`] (one image under several names) and
//! [`parse_registry_output`] (`--output type=image,name=…,push=true` / `type=registry`).
//!
//! Layers built here are stored uncompressed and compressed on the way out (gzip unless
//! told otherwise); the compressed blob is kept, so pushing again compresses nothing.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use strata_cache::Store;
use strata_oci::registry::Client;
use strata_worker::image::{self, familiar_name, LayerCompression, PushOptions, PushedImage};

use super::pull::{client, RegistryArgs};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Codec {
    /// Layers as stored (uncompressed for images built here).
    Uncompressed,
    /// gzip (what every registry and runtime reads).
    Gzip,
    /// zstd (OCI zstd media type).
    Zstd,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Compression of layers stored uncompressed.
    #[arg(long, value_enum, default_value = "gzip")]
    compression: Codec,
    /// Compression level (gzip 0-9, zstd 1-22).
    #[arg(long)]
    compression_level: Option<String>,
    /// Recompress layers stored with another codec too.
    #[arg(long)]
    force_compression: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Do not print progress.
    #[arg(short, long)]
    quiet: bool,
    /// The image to push: `[REGISTRY/]REPOSITORY[:TAG]` as stored.
    name: String,
}

/// A `--output` that tags and maybe pushes the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryOutput {
    /// `name=` values (comma- or repeated-field-separated).
    pub names: Vec<String>,
    /// Whether to push (`push=true`, or `type=registry`).
    pub push: bool,
    /// Layer compression for the push.
    pub compression: LayerCompression,
}

fn parse_bool(spec: &str, key: &str, value: &str) -> Result<bool> {
    match value {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => bail!("invalid output {spec:?}: non-bool value {value} specified for {key}"),
    }
}

/// Parses `type=image|registry,name=A[,name=B],push=true,compression=…`; `None` for the
/// other output types. A quoted `"name=a,b"` list is accepted as buildx writes it.
pub fn parse_registry_output(spec: &str) -> Result<Option<RegistryOutput>> {
    let kind = spec
        .split(',')
        .find_map(|f| f.strip_prefix("type="))
        .unwrap_or("");
    let mut push = match kind {
        "image" => false,
        "registry" => true,
        _ => return Ok(None),
    };
    let mut names = Vec::new();
    let (mut codec, mut level, mut force) = (None, None, None);
    let mut fields = spec.split(',').peekable();
    while let Some(field) = fields.next() {
        let (key, value) = field.split_once('=').unwrap_or((field, ""));
        match key {
            "type" => {}
            "name" | "\"name" => {
                // `"name=a,b"`: the list continues to the closing quote.
                let mut value = value.to_owned();
                if key.starts_with('"') {
                    while !value.ends_with('"') {
                        match fields.next() {
                            Some(more) => {
                                value.push(',');
                                value.push_str(more);
                            }
                            None => bail!("invalid output {spec:?}: unterminated quote"),
                        }
                    }
                    value.pop();
                }
                names.extend(
                    value
                        .split(',')
                        .filter(|n| !n.is_empty())
                        .map(str::to_owned),
                );
            }
            "push" => push = parse_bool(spec, key, value)?,
            "compression" => codec = Some(value),
            "compression-level" => level = Some(value),
            "force-compression" => force = Some(value),
            // Accepted for buildx compatibility; the store always keeps the image.
            "unpack" | "store" | "oci-mediatypes" => {}
            "registry.insecure" => {
                if !parse_bool(spec, key, value)? {
                    continue;
                }
                bail!("invalid output {spec:?}: use --insecure-registry HOST for plain http registries")
            }
            _ => bail!("invalid output {spec:?}: unknown field {key:?}"),
        }
    }
    let compression = LayerCompression::parse(codec, level, force)
        .with_context(|| format!("invalid output {spec:?}"))?;
    Ok(Some(RegistryOutput {
        names,
        push,
        compression,
    }))
}

/// Pushes the stored image `local` under every name in `names`, one after the other (the
/// second and later names upload nothing their registry already has).
pub fn push_all(
    store: &Store,
    client: &Arc<Client>,
    local: &str,
    names: &[String],
    compression: LayerCompression,
    quiet: bool,
) -> Result<Vec<PushedImage>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let options = PushOptions {
        compression,
        ..PushOptions::default()
    };
    let mut pushed = Vec::new();
    for name in names {
        if !quiet {
            eprintln!("pushing {}", familiar_name(name));
        }
        let done = runtime
            .block_on(image::push_image(store, client, local, name, &options))
            .with_context(|| format!("failed to push {}", familiar_name(name)))?;
        if !quiet {
            eprintln!(
                "{}: digest: {} size: {} ({} uploaded, {} mounted, {} already there)",
                familiar_name(&done.reference),
                done.manifest.digest,
                done.manifest.size,
                done.uploaded,
                done.mounted,
                done.present
            );
        }
        pushed.push(done);
    }
    Ok(pushed)
}

pub fn run(args: Args, root: Option<&Path>) -> Result<ExitCode> {
    let codec = match args.compression {
        Codec::Uncompressed => "uncompressed",
        Codec::Gzip => "gzip",
        Codec::Zstd => "zstd",
    };
    let compression = LayerCompression::parse(
        Some(codec),
        args.compression_level.as_deref(),
        args.force_compression.then_some("true"),
    )?;
    let store = crate::root::open(root)?;
    image::find_image(&store, &args.name)?;
    // `docker push NAME` pushes to the name's own registry and tag.
    let destination = image::normalize_tag(&args.name)?;
    let client = client(&args.registry)?;
    let pushed = push_all(
        &store,
        &client,
        &args.name,
        &[destination],
        compression,
        args.quiet,
    )?;
    for done in pushed {
        println!("{}", done.manifest.digest);
    }
    Ok(ExitCode::SUCCESS)
}

/// Pushes a build result as `--push` and the registry outputs ask (nothing if neither
/// does). `exported` are the image's stored names; `--push` pushes all of them.
pub fn push_build_result(
    store: &Store,
    client: &Arc<Client>,
    exported: &[String],
    outputs: &[RegistryOutput],
    push_flag: bool,
    quiet: bool,
) -> Result<Vec<PushedImage>> {
    let Some(local) = exported.first() else {
        return Ok(Vec::new());
    };
    let mut jobs: Vec<(Vec<String>, LayerCompression)> = Vec::new();
    for output in outputs.iter().filter(|o| o.push) {
        let names = if output.names.is_empty() {
            exported.to_vec()
        } else {
            output
                .names
                .iter()
                .map(|n| image::normalize_tag(n))
                .collect::<Result<_, _>>()?
        };
        jobs.push((names, output.compression));
    }
    if push_flag && jobs.is_empty() {
        jobs.push((exported.to_vec(), LayerCompression::default()));
    }
    let mut pushed = Vec::new();
    for (names, compression) in jobs {
        pushed.extend(push_all(store, client, local, &names, compression, quiet)?);
    }
    Ok(pushed)
}
