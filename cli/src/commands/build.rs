//! `strata build [-t NAME]... [-f Dockerfile] [--target STAGE] [--build-arg K[=V]]... CONTEXT`
//!
//! Parse → type → resolve (base image configs read from the local store; an image the store
//! lacks, or every base with `--pull`, is pulled from its registry first) → lower → solve on
//! the local worker → export the result into the store and tag it → push it when `--push` or
//! `--output type=image,push=true` / `type=registry` ask (see `push.rs`; plain http only for
//! loopback registries and `--insecure-registry HOST`).

use super::{dockerfile_path, Source};
use crate::progress::Mode;
use crate::{report, root};
use anyhow::{anyhow, bail, Context as _, Result};
use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use strata_executor::{Backend, Executor};
use strata_frontend::instructions::{self, DependencySource, ResolveOptions, StageBase};
use strata_frontend::lower::{self, BaseImageConfig, LowerOptions};
use strata_frontend::{ignore, parser};
use strata_solver::op::NetworkMode;
use strata_solver::{SolveOptions, Solver};
use strata_worker::cache_remote;
use strata_worker::engine::{FsRef, LocalWorker, Secret};
use strata_worker::image::{self, ExportOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name and optionally a tag (`name:tag`); may be repeated.
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile).
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Build this stage and what it needs.
    #[arg(long)]
    target: Option<String>,
    /// Build-time variables (`KEY=VALUE`, or `KEY` to take it from the environment).
    #[arg(long = "build-arg")]
    build_args: Vec<String>,
    /// Labels to add to the image (`KEY=VALUE`).
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Do not use cached results.
    #[arg(long)]
    no_cache: bool,
    /// Progress output.
    #[arg(long, value_enum, default_value = "auto")]
    progress: Mode,
    /// Write the image id to this file.
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// Write build result metadata (digests, names) to this JSON file.
    #[arg(long)]
    metadata_file: Option<PathBuf>,
    /// Also write the result out: `type=oci,dest=FILE`, `type=docker,dest=FILE` (the image),
    /// `type=local,dest=DIR` or `type=tar,dest=FILE|-` (its filesystem); `type=image`, the
    /// local store, is always done.
    #[arg(short = 'o', long = "output")]
    outputs: Vec<String>,
    /// Secrets for `RUN --mount=type=secret`: `id=ID,src=PATH` or `id=ID,env=VAR`.
    #[arg(long = "secret")]
    secrets: Vec<String>,
    /// SSH agents for `RUN --mount=type=ssh`: `default` (`$SSH_AUTH_SOCK`) or `ID=SOCKET`.
    #[arg(long = "ssh")]
    ssh: Vec<String>,
    /// Extra privileges: `security.insecure` (`RUN --security=insecure`), `network.host`.
    #[arg(long = "allow")]
    allow: Vec<String>,
    /// Networking mode of RUN steps: `default`, `none` or `host`.
    #[arg(long, default_value = "default")]
    network: String,
    /// What runs RUN steps: `native` (Strata's own sandbox), `runc` or `crun` (OCI runtimes).
    #[arg(long, value_enum, default_value = "native")]
    runtime: Runtime,
    /// Images standing for names in FROM / COPY --from: `NAME=docker-image://REF` or
    /// `NAME=oci-layout://PATH[:TAG|@DIGEST]`.
    #[arg(long = "build-context")]
    build_contexts: Vec<String>,
    /// Steps running at once (default: 8 × the number of cores).
    #[arg(long)]
    max_parallelism: Option<usize>,
    /// Always pull base images from their registry, even when the store has them.
    #[arg(long)]
    pull: bool,
    /// Push the image to every `-t` name's registry (buildx's `--push`).
    #[arg(long)]
    push: bool,
    /// Export the build cache: `type=local,dest=DIR[,mode=min|max]` or
    /// `type=registry,ref=HOST/REPO:TAG[,mode=min|max]`; may be repeated.
    #[arg(long = "cache-to")]
    cache_to: Vec<String>,
    /// Import a build cache: `type=local,src=DIR` or `type=registry,ref=HOST/REPO:TAG`;
    /// may be repeated.
    #[arg(long = "cache-from")]
    cache_from: Vec<String>,
    #[command(flatten)]
    registry: super::pull::RegistryArgs,
    /// The build context directory, or `-`: stdin holds a context tar (plain, gzip, bzip2, xz
    /// or zstd) or a Dockerfile with no context.
    context: PathBuf,
}

/// `KEY=VALUE` pairs; a bare `KEY` takes its value from the environment (skipped if unset).
fn key_values(items: &[String], from_env: bool) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        match item.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None if from_env => {
                if let Ok(v) = std::env::var(item) {
                    out.insert(item.clone(), v);
                }
            }
            None => bail!("invalid key=value: {item:?}"),
        }
    }
    Ok(out)
}

/// The `.dockerignore` patterns for `dockerfile` in `context`.
fn dockerignore(context: &Path, dockerfile: &Path) -> Result<Vec<String>> {
    let name = dockerfile
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let beside = dockerfile
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let path_of = |c: &ignore::IgnoreFileCandidate| match c.location {
        ignore::IgnoreFileLocation::DockerfileSource => beside.join(&c.path),
        ignore::IgnoreFileLocation::Context => context.join(&c.path),
    };
    match ignore::find_ignore_file(&name, |c| path_of(c).is_file()) {
        Some(found) => {
            let path = path_of(&found);
            let data = std::fs::read(&path)
                .with_context(|| format!("failed to read {}", path.display()))?;
            Ok(ignore::read_ignore(&data))
        }
        None => Ok(Vec::new()),
    }
}

/// `--runtime`: the executor backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Runtime {
    Native,
    Runc,
    Crun,
}

impl Runtime {
    fn backend(self) -> Result<Backend> {
        let find = |name: &str| -> Result<PathBuf> {
            std::env::var_os("PATH")
                .into_iter()
                .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                .chain(["/usr/sbin".into(), "/usr/bin".into(), "/sbin".into()])
                .map(|d| d.join(name))
                .find(|p| p.is_file())
                .ok_or_else(|| anyhow!("--runtime {name}: {name} not found in PATH (install it, or use --runtime native)"))
        };
        Ok(match self {
            Runtime::Native => Backend::Native,
            Runtime::Runc => Backend::Runc(find("runc")?),
            Runtime::Crun => Backend::Crun(find("crun")?),
        })
    }
}

/// `--ssh default|ID[=SOCKET]`: an agent socket by id (`$SSH_AUTH_SOCK` when no path).
fn parse_ssh(spec: &str) -> Result<(String, PathBuf)> {
    let (id, path) = match spec.split_once('=') {
        Some((id, path)) => (id.to_string(), PathBuf::from(path)),
        None => {
            let sock = std::env::var_os("SSH_AUTH_SOCK").ok_or_else(|| {
                anyhow!("invalid ssh {spec:?}: SSH_AUTH_SOCK is not set (give ID=SOCKET)")
            })?;
            (spec.to_string(), PathBuf::from(sock))
        }
    };
    if id.is_empty() || path.as_os_str().is_empty() || path.to_string_lossy().contains(',') {
        bail!("invalid ssh {spec:?}: expected default or ID=SOCKET");
    }
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(&path)
        .with_context(|| format!("ssh {id}: agent socket {}", path.display()))?;
    if !meta.file_type().is_socket() {
        bail!(
            "ssh {id}: {} is not an agent socket (only forwarding a running ssh-agent is supported)",
            path.display()
        );
    }
    Ok((id, path))
}

/// `--network`: the default network of RUN steps.
fn parse_network(mode: &str) -> Result<NetworkMode> {
    Ok(match mode {
        "default" => NetworkMode::Default,
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        other => bail!("invalid --network {other:?}: expected default, none or host"),
    })
}

/// `--secret id=ID[,type=file|env][,src=PATH|env=VAR]`, as buildx reads it (a bare `id=ID`
/// takes the environment variable of that name).
fn parse_secret(spec: &str) -> Result<(String, Secret)> {
    let (mut id, mut src, mut env, mut kind) = (None, None, None, None);
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
            Some(("env", v)) => env = Some(v.to_string()),
            Some(("type", v)) => kind = Some(v.to_string()),
            _ => bail!("invalid secret {spec:?}: unknown field {field:?}"),
        }
    }
    let id = id.ok_or_else(|| anyhow!("invalid secret {spec:?}: id= is required"))?;
    let secret = match (src, env, kind.as_deref()) {
        (Some(path), None, None | Some("file")) => Secret::File(path),
        (None, Some(var), None | Some("env")) => Secret::Env(var),
        (None, None, Some("file")) => Secret::File(PathBuf::from(&id)),
        (None, None, None | Some("env")) => Secret::Env(id.clone()),
        _ => bail!("invalid secret {spec:?}: give one of src= or env="),
    };
    Ok((id, secret))
}

/// What `strata build -` found on stdin.
enum StdinContext {
    /// A (compressed) tar: the build context.
    Archive(strata_worker::context::ContextArchive),
    /// Anything else: a Dockerfile, with no context.
    Dockerfile(Vec<u8>),
}

/// Reads stdin's first bytes to tell a context archive from a Dockerfile, then the rest.
fn read_stdin_context(store: &strata_cache::Store) -> Result<StdinContext> {
    use std::io::Read;
    let mut stdin = std::io::stdin().lock();
    let mut head = Vec::with_capacity(512);
    (&mut stdin)
        .take(512)
        .read_to_end(&mut head)
        .context("failed to read stdin")?;
    if strata_worker::context::is_context_archive(&head) {
        let reader = std::io::Cursor::new(head).chain(stdin);
        let archive = strata_worker::context::ContextArchive::unpack(store, reader)?;
        return Ok(StdinContext::Archive(archive));
    }
    stdin
        .read_to_end(&mut head)
        .context("failed to read Dockerfile from stdin")?;
    Ok(StdinContext::Dockerfile(head))
}

/// The Dockerfile of a context archive: `-f` names a file inside it (default
/// `Dockerfile`), and the file must not lead outside it through a symlink.
fn dockerfile_in_archive(file: Option<&Path>, dir: &Path) -> Result<PathBuf> {
    let name = file.unwrap_or(Path::new("Dockerfile"));
    let inside = name.components().all(|c| {
        matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    });
    if !inside {
        bail!("-f {}: with a context archive on stdin, the Dockerfile must be a relative path inside the archive", name.display());
    }
    let path = dir.join(name);
    match path.canonicalize() {
        Ok(real) if !real.starts_with(dir) => bail!(
            "-f {}: the Dockerfile in the context archive is a link outside it",
            name.display()
        ),
        // A missing file is reported when it is read, with its name.
        _ => Ok(path),
    }
}

/// An empty temporary directory, removed when dropped.
struct EmptyDir(PathBuf);

impl EmptyDir {
    fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("strata-empty-context-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for EmptyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An `--output` besides the local store.
#[derive(Debug)]
struct Output {
    format: image::ArchiveFormat,
    dest: PathBuf,
    /// `compression=`, `compression-level=`, `force-compression=` (default gzip).
    compression: image::LayerCompression,
}

/// Parses `type=oci|docker|image,dest=PATH`; `None` for `type=image` (the store).
fn parse_output(spec: &str) -> Result<Option<Output>> {
    let mut kind = None;
    let mut dest = None;
    let (mut codec, mut level, mut force) = (None, None, None);
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("type", v)) => kind = Some(v.to_string()),
            Some(("dest", v)) => dest = Some(PathBuf::from(v)),
            Some(("compression", v)) => codec = Some(v),
            Some(("compression-level", v)) => level = Some(v),
            Some(("force-compression", v)) => force = Some(v),
            None if field == "force-compression" => force = Some(""),
            Some(("name", _)) => {}
            _ => bail!("invalid output {spec:?}: unknown field {field:?}"),
        }
    }
    let format = match kind.as_deref() {
        Some("image") => return Ok(None),
        Some("oci") => image::ArchiveFormat::Oci,
        Some("docker") => image::ArchiveFormat::Docker,
        Some(other) => {
            bail!("output type {other:?} is not supported yet (supported: image, oci, docker, local, tar)")
        }
        None => bail!("invalid output {spec:?}: type= is required"),
    };
    let dest = dest.ok_or_else(|| anyhow!("output {spec:?} needs dest=FILE or dest=-"))?;
    let compression = image::LayerCompression::parse(codec, level, force)
        .with_context(|| format!("invalid output {spec:?}"))?;
    Ok(Some(Output {
        format,
        dest,
        compression,
    }))
}

/// `--output type=local,dest=DIR` or `type=tar,dest=FILE|-`: the final filesystem.
#[derive(Debug)]
struct RootfsOutput {
    tar: bool,
    dest: PathBuf,
}

/// Parses a `type=local|tar` output; `None` for the image types.
fn parse_rootfs_output(spec: &str) -> Result<Option<RootfsOutput>> {
    let fields: Vec<(&str, &str)> = spec
        .split(',')
        .map(|f| f.split_once('=').unwrap_or((f, "")))
        .collect();
    let tar = match fields.iter().find(|(k, _)| *k == "type").map(|(_, v)| *v) {
        Some("local") => false,
        Some("tar") => true,
        _ => return Ok(None),
    };
    let mut dest = None;
    for (key, value) in fields {
        match key {
            "type" => {}
            "dest" if !value.is_empty() => dest = Some(PathBuf::from(value)),
            _ => {
                bail!("invalid output {spec:?}: unknown field {key:?} (type=local|tar takes dest=)")
            }
        }
    }
    let what = if tar {
        "dest=FILE or dest=-"
    } else {
        "dest=DIR"
    };
    let dest = dest.ok_or_else(|| anyhow!("output {spec:?} needs {what}"))?;
    if !tar && dest == Path::new("-") {
        bail!("output {spec:?}: type=local cannot write to stdout (use type=tar,dest=-)");
    }
    Ok(Some(RootfsOutput { tar, dest }))
}

/// Writes the build's final filesystem as files or as a tar.
fn write_rootfs_output(
    store: &strata_cache::Store,
    top: Option<&strata_cache::SnapshotId>,
    output: &RootfsOutput,
) -> Result<()> {
    if !output.tar {
        image::export_rootfs_dir(store, top, &output.dest)?;
        return Ok(());
    }
    if output.dest == Path::new("-") {
        let stdout = std::io::BufWriter::new(std::io::stdout().lock());
        let (mut out, _) = image::export_rootfs_tar(store, top, stdout, &output.dest)?;
        std::io::Write::flush(&mut out).context("failed to write the tar to stdout")?;
        return Ok(());
    }
    // Written beside the destination and renamed: never a half-written tar at DEST.
    let tmp = temporary_beside(&output.dest)?;
    let file = std::fs::File::create(&tmp)
        .with_context(|| format!("failed to create {}", tmp.display()))?;
    let written = image::export_rootfs_tar(store, top, std::io::BufWriter::new(file), &output.dest)
        .map_err(anyhow::Error::from)
        .and_then(|(out, _)| {
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            Ok(())
        })
        .and_then(|()| Ok(std::fs::rename(&tmp, &output.dest)?));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("failed to write {}", output.dest.display()))
}

/// Writes the exported image as an archive.
fn write_output(
    store: &strata_cache::Store,
    output: &Output,
    exported: &image::ExportedImage,
) -> Result<()> {
    let manifest = strata_oci::manifest::Descriptor::new(
        strata_oci::media_type::OCI_MANIFEST,
        exported.manifest,
        exported.size,
    );
    let saved = [image::SaveImage {
        manifest,
        names: exported.names.clone(),
    }];
    let options = image::SaveOptions {
        format: output.format,
        compression: output.compression,
        platform: image::host_platform(),
        scratch: None,
    };
    if output.dest == Path::new("-") {
        let stdout = std::io::BufWriter::new(std::io::stdout().lock());
        let mut out = image::save_images(store, &saved, &options, stdout)?;
        std::io::Write::flush(&mut out).context("failed to write the archive to stdout")?;
        return Ok(());
    }
    // Written beside the destination and renamed: never a half-written archive at DEST.
    let tmp = temporary_beside(&output.dest)?;
    let file = std::fs::File::create(&tmp)
        .with_context(|| format!("failed to create {}", tmp.display()))?;
    let written = image::save_images_to_file(store, &saved, &options, file)
        .map_err(anyhow::Error::from)
        .and_then(|file| Ok(file.sync_all()?))
        .and_then(|()| Ok(std::fs::rename(&tmp, &output.dest)?));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("failed to write {}", output.dest.display()))
}

/// `DIR/.NAME.strata-tmp` for `DIR/NAME`: where an output file is written before its rename.
fn temporary_beside(dest: &Path) -> Result<PathBuf> {
    let name = dest
        .file_name()
        .ok_or_else(|| anyhow!("output dest {} is not a file name", dest.display()))?;
    Ok(dest.with_file_name(format!(".{}.strata-tmp", name.to_string_lossy())))
}

pub fn run(args: Args, root_dir: Option<&Path>) -> Result<ExitCode> {
    for a in &args.allow {
        if a != "security.insecure" && a != "network.host" {
            bail!("invalid entitlement {a:?}: expected security.insecure or network.host");
        }
    }
    let network = parse_network(&args.network)?;
    let cache_to = args
        .cache_to
        .iter()
        .map(|s| cache_remote::CacheTo::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let cache_from = args
        .cache_from
        .iter()
        .map(|s| cache_remote::CacheFrom::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut outputs = Vec::new();
    let mut rootfs_outputs = Vec::new();
    // `type=image|registry`: more names, and pushing (see push.rs).
    let mut registry_outputs = Vec::new();
    for spec in &args.outputs {
        if let Some(registry) = super::push::parse_registry_output(spec)? {
            registry_outputs.push(registry);
            continue;
        }
        if let Some(rootfs) = parse_rootfs_output(spec)? {
            rootfs_outputs.push(rootfs);
            continue;
        }
        outputs.extend(parse_output(spec)?);
    }
    // buildx's rule: an archive output with `dest=-` owns stdout, so only one may, and never
    // a terminal.
    let on_stdout = rootfs_outputs
        .iter()
        .filter(|o| o.tar)
        .map(|o| &o.dest)
        .chain(outputs.iter().map(|o| &o.dest))
        .filter(|d| d.as_path() == Path::new("-"))
        .count();
    if on_stdout > 1 {
        bail!("only one output can write to stdout (dest=-)");
    }
    if on_stdout == 1 && std::io::stdout().is_terminal() {
        bail!("refusing to write an archive to a terminal: use dest=FILE or redirect stdout");
    }
    let store = root::open(root_dir)?;
    // `strata build - < Dockerfile`: the Dockerfile comes on stdin and there is no context
    // (an empty directory stands in, so COPY fails with "not found" as in docker).
    // `strata build - < context.tar`: told apart by the first bytes, as docker does; the
    // archive is unpacked under the store root and removed after the build.
    let empty_context;
    let _context_archive;
    let mut stdin_dockerfile = None;
    let (path, context) = if args.context == Path::new("-") {
        match read_stdin_context(&store)? {
            StdinContext::Archive(archive) => {
                let dir = archive.dir().to_path_buf();
                _context_archive = archive;
                (dockerfile_in_archive(args.file.as_deref(), &dir)?, dir)
            }
            StdinContext::Dockerfile(bytes) => {
                stdin_dockerfile = Some(bytes);
                empty_context = EmptyDir::new()?;
                (PathBuf::from("-"), empty_context.0.clone())
            }
        }
    } else {
        (
            dockerfile_path(args.file.clone(), &args.context),
            args.context.clone(),
        )
    };
    let src = match stdin_dockerfile {
        Some(bytes) => Source {
            name: "Dockerfile".into(),
            bytes,
        },
        None => Source::read(&path)?,
    };
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
    let located = |e: &instructions::Error| {
        let span = e.span().unwrap_or_default();
        report::located(
            &src,
            &e.inner().to_string(),
            span.start_line.max(1),
            span.end_line,
            None,
        );
        ExitCode::FAILURE
    };
    let (stages, meta_args) = match instructions::parse_stages(&file) {
        Ok(parsed) => parsed,
        Err(e) => return Ok(located(&e)),
    };

    let mut build_args = key_values(&args.build_args, true)?;
    // As buildx: the SOURCE_DATE_EPOCH environment variable is a build arg unless given.
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        if !epoch.is_empty() {
            build_args
                .entry("SOURCE_DATE_EPOCH".to_string())
                .or_insert(epoch);
        }
    }
    let mut resolve_options = ResolveOptions {
        target: args.target.clone(),
        build_args: build_args.clone(),
        escape: file.escape,
        ..Default::default()
    };
    // First pass: which images the needed stages start from or copy from.
    let first = match instructions::resolve(&stages, &meta_args, &resolve_options) {
        Ok(r) => r,
        Err(e) => return Ok(located(&e)),
    };
    let platform = image::host_platform();
    let registry_client = super::pull::client(&args.registry)?;
    let pushes = registry_outputs.iter().any(|o| o.push);
    if (args.push || pushes)
        && args.tags.is_empty()
        && registry_outputs.iter().all(|o| o.names.is_empty())
    {
        bail!("pushing needs a name: give -t NAME or --output type=image,name=NAME,push=true");
    }
    let mut base_images = HashMap::new();
    let build_contexts =
        super::build_context::BuildContexts::resolve(&store, &args.build_contexts, &platform)?;
    for stage in first.stages.iter().filter(|s| s.reachable) {
        let mut names: Vec<&String> = stage
            .dependencies
            .iter()
            .filter_map(|d| match &d.source {
                DependencySource::Image(name) if name != "scratch" => Some(name),
                _ => None,
            })
            .collect();
        if let StageBase::Image(name) = &stage.base {
            names.push(name);
        }
        for name in names {
            if base_images.contains_key(name) {
                continue;
            }
            if let Some(image) = build_contexts.image(name) {
                base_images.insert(name.clone(), image.clone());
                continue;
            }
            let record = super::pull::base_image(
                &store,
                &registry_client,
                name,
                &platform,
                args.pull,
                args.progress == Mode::Quiet,
            )?;
            let stored =
                image::read_image(&store, &image::target_descriptor(&record.target), &platform)?;
            base_images.insert(
                name.clone(),
                BaseImageConfig {
                    digest: Some(record.target.manifest.to_string()),
                    image: image::from_oci_config(&stored.config),
                },
            );
        }
    }
    let lower_options = LowerOptions {
        build_args,
        labels: key_values(&args.labels, false)?,
        escape: file.escape,
        dockerignore: if path == Path::new("-") {
            Vec::new()
        } else {
            dockerignore(&context, &path)?
        },
        base_images,
        network,
        // buildx grants network.host itself for `--network host`.
        allow_network_host: args.network == "host"
            || args.allow.iter().any(|a| a == "network.host"),
        allow_insecure: args.allow.iter().any(|a| a == "security.insecure"),
        ..Default::default()
    };
    resolve_options.base_images = lower_options.resolve_base_images();
    let resolution = match instructions::resolve(&stages, &meta_args, &resolve_options) {
        Ok(r) => r,
        Err(e) => return Ok(located(&e)),
    };
    let lowered = match lower::lower(&resolution, &lower_options) {
        Ok(l) => l,
        Err(e) => {
            let line = e.line().max(1);
            report::located(&src, &e.to_string(), line, line, None);
            return Ok(ExitCode::FAILURE);
        }
    };

    let executor = Executor::new(
        args.runtime.backend()?,
        store.root().join("v1").join("executor"),
    )?;
    let ssh = args
        .ssh
        .iter()
        .map(|s| parse_ssh(s))
        .collect::<Result<HashMap<_, _>>>()?;
    let contexts = vec![(
        lower::CONTEXT_NAME.to_string(),
        context.clone(),
        lower_options.dockerignore.clone(),
    )];
    let secrets = args
        .secrets
        .iter()
        .map(|s| parse_secret(s))
        .collect::<Result<HashMap<_, _>>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Imported caches are read (manifest and config only) before the solve; their layers
    // are fetched by lookups that hit.
    let imported = (!cache_from.is_empty()).then(|| {
        Arc::new(runtime.block_on(cache_remote::ImportedCache::load(
            &cache_from,
            registry_client.clone(),
        )))
    });
    let mut worker = LocalWorker::new(store.clone(), executor, contexts)
        .map_err(|e| anyhow!("{e}"))?
        .with_secrets(secrets)
        .with_ssh(ssh);
    if let Some(imported) = &imported {
        worker = worker.with_cache_imports(imported.clone());
    }
    let worker = Arc::new(worker);
    let graph = Arc::new(lowered.graph);
    let mode = match args.progress {
        Mode::Auto if std::io::stderr().is_terminal() => Mode::Tty,
        Mode::Auto => Mode::Plain,
        other => other,
    };

    let solved = runtime.block_on(async {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let printer = tokio::spawn(crate::progress::print(mode, rx));
        let mut options = SolveOptions {
            no_cache: args.no_cache,
            progress: Some(tx),
            ..Default::default()
        };
        if let Some(n) = args.max_parallelism {
            options.max_parallelism = n;
        }
        let result = Solver::new(worker.clone())
            .solve(graph.clone(), lowered.target, options)
            .await;
        let _ = printer.await;
        result
    });
    // Bad or unreachable cache is not an error (as BuildKit): say what was ignored.
    if let Some(imported) = &imported {
        for warning in imported.warnings() {
            eprintln!("WARNING: {warning}");
        }
        if mode != Mode::Quiet && !imported.fetched().is_empty() {
            eprintln!(
                "importing cache: {} layer(s) fetched",
                imported.fetched().len()
            );
        }
    }
    let solved = match solved {
        Ok(s) => s,
        Err(e) => {
            match e.lines() {
                Some((start, end)) => report::located(&src, &e.to_string(), start, end, None),
                None => eprintln!("ERROR: failed to solve: {e}"),
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let top = match &solved.result {
        FsRef::Scratch => None,
        FsRef::Snapshot(id) => Some(id.clone()),
        FsRef::Context(_) => bail!("the build result is the build context itself"),
    };
    let keys = solved.keys;
    let layer_of = |vertex| {
        let key = keys.get(&vertex)?;
        store
            .cache()
            .get(&key.0, None)
            .ok()
            .flatten()?
            .value
            .snapshot
    };
    let mut tags = args.tags.clone();
    for name in registry_outputs.iter().flat_map(|o| &o.names) {
        if !tags.contains(name) {
            tags.push(name.clone());
        }
    }
    let exported = image::export_image(
        &store,
        top.as_ref(),
        &lowered.config,
        layer_of,
        &tags,
        &ExportOptions {
            source_date_epoch: lower_options.source_date_epoch.or(
                match resolution.source_date_epoch {
                    Some(instructions::SourceDateEpoch::Unix(s)) => Some(s),
                    _ => None,
                },
            ),
            ..ExportOptions::default()
        },
    )?;
    if mode != Mode::Quiet {
        for name in &exported.names {
            eprintln!("naming to {name} done");
        }
    }
    // An archive on stdout owns stdout: the image id is not printed into it.
    if on_stdout == 0 {
        println!("{}", exported.config);
    }
    for output in &rootfs_outputs {
        write_rootfs_output(&store, top.as_ref(), output)?;
    }
    for output in &outputs {
        write_output(&store, output, &exported)?;
    }
    let cache_keys: Vec<[u8; 32]> = keys.values().map(|k| k.0).collect();
    for to in &cache_to {
        let report = runtime
            .block_on(cache_remote::export_cache(
                &store,
                &registry_client,
                to,
                &cache_keys,
                top.as_ref(),
            ))
            .with_context(|| format!("failed to export cache to {}", to.location))?;
        if mode != Mode::Quiet {
            eprintln!(
                "exporting cache to {}: {} records, {} layers ({} blobs written, {} already there)",
                to.location, report.records, report.layers, report.uploaded, report.present
            );
        }
    }
    let pushed = super::push::push_build_result(
        &store,
        &registry_client,
        &exported.names,
        &registry_outputs,
        args.push,
        mode == Mode::Quiet,
    )?;
    // Pushed layers are compressed, so the pushed manifest is the image's digest then.
    let image_digest = pushed
        .first()
        .map_or(exported.manifest, |p| p.manifest.digest);
    if let Some(path) = &args.metadata_file {
        let metadata = serde_json::json!({
            "containerimage.digest": image_digest.to_string(),
            "containerimage.config.digest": exported.config.to_string(),
            "image.name": exported.names.join(","),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&metadata)?)
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    if let Some(iidfile) = &args.iidfile {
        std::fs::write(iidfile, exported.config.to_string())
            .with_context(|| format!("failed to write {}", iidfile.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
