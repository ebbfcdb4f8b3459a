//! `strata pull [--platform OS/ARCH[/VARIANT]] [--insecure-registry HOST]... NAME`: fetches
//! an image from its registry into the store, as `docker pull` does.
//!
//! Also the registry plumbing the other commands share: [`RegistryArgs`] (the
//! `--insecure-registry` flag of `pull`, `push` and `build`), [`client`], [`pull`] (a pull
//! from synchronous code), and [`parse_platform`].

use anyhow::{anyhow, Context, Result};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use strata_cache::Store;
use strata_oci::registry::{Client, ClientOptions};
use strata_oci::Platform;
use strata_worker::image::{self, familiar_name, PulledImage};

/// Registry flags shared by `pull`, `push` and `build`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RegistryArgs {
    /// Allow plain http to this registry (`HOST[:PORT]`); may be repeated. Loopback
    /// registries (`localhost`, `127.0.0.1`, `[::1]`) always may use http.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The platform to pull from a multi-platform image (default: this machine's).
    #[arg(long)]
    platform: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Do not print progress.
    #[arg(short, long)]
    quiet: bool,
    /// The image: `[REGISTRY/]REPOSITORY[:TAG|@DIGEST]`.
    name: String,
}

/// A registry client for these flags (credentials from the Docker config).
pub fn client(args: &RegistryArgs) -> Result<Arc<Client>> {
    let options = ClientOptions {
        insecure_registries: args.insecure_registries.clone(),
        ..ClientOptions::default()
    };
    Ok(Arc::new(Client::new(options)?))
}

/// `os/arch[/variant]` → a platform.
pub fn parse_platform(spec: &str) -> Result<Platform> {
    let parsed = strata_frontend::instructions::parse_platform(spec)
        .map_err(|e| anyhow!("invalid platform {spec:?}: {e}"))?;
    Ok(Platform {
        os: parsed.os,
        architecture: parsed.architecture,
        variant: parsed.variant,
        ..Platform::default()
    })
}

/// Pulls `name` from synchronous code (a runtime of its own for the duration).
pub fn pull(
    store: &Store,
    client: &Arc<Client>,
    name: &str,
    platform: &Platform,
) -> Result<PulledImage> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(image::pull_image(store, client, name, platform))?)
}

pub fn run(args: Args, root: Option<&Path>) -> Result<ExitCode> {
    let platform = match &args.platform {
        Some(spec) => parse_platform(spec)?,
        None => image::host_platform(),
    };
    let store = crate::root::open(root)?;
    let client = client(&args.registry)?;
    let reference = strata_oci::registry::Reference::parse(&args.name)?;
    if !args.quiet {
        eprintln!(
            "{}: Pulling from {}",
            reference.manifest_reference(),
            familiar_name(&reference.name())
        );
    }
    // The error names the image already ("failed to pull NAME: …").
    let pulled = pull(&store, &client, &args.name, &platform)?;
    if !args.quiet {
        eprintln!("Digest: {}", pulled.index.unwrap_or(pulled.manifest.digest));
        eprintln!(
            "Status: {} layers downloaded ({}), {} already present",
            pulled.layers_fetched,
            crate::human::size(pulled.bytes_fetched),
            pulled.layers_present
        );
    }
    println!("{}", pulled.name);
    Ok(ExitCode::SUCCESS)
}

/// The stored record of base image `name` for a build: pulled when the store lacks it, or
/// always with `--pull`. Errors say which image could not be resolved.
pub fn base_image(
    store: &Store,
    client: &Arc<Client>,
    name: &str,
    platform: &Platform,
    always: bool,
    quiet: bool,
) -> Result<strata_cache::ImageRecord> {
    if !always {
        match image::find_image(store, name) {
            Ok(record) => return Ok(record),
            Err(image::NameError::NotFound { .. }) => {}
            Err(e) => return Err(anyhow!("failed to resolve source metadata for {name}: {e}")),
        }
    }
    if !quiet {
        eprintln!("pulling {name}");
    }
    // Unpacked while it downloads: the FROM step then finds its snapshots ready.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let pulled = runtime
        .block_on(image::pull_and_unpack(store, client, name, platform))
        .with_context(|| format!("failed to resolve source metadata for {name}"))?;
    image::find_image(store, &pulled.name)
        .with_context(|| format!("failed to resolve source metadata for {name}"))
}
