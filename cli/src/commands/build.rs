//! `strata build [-t NAME]... [-f Dockerfile] [--target STAGE] [--build-arg K[=V]]... CONTEXT`
//!
//! Parse → type → resolve (base image configs read from the local store) → lower → solve on
//! the local worker → export the result into the store and tag it.

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
use strata_solver::{SolveOptions, Solver};
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
    /// Also write the image out: `type=oci,dest=FILE` or `type=docker,dest=FILE`
    /// (`type=image`, the local store, is always done).
    #[arg(short = 'o', long = "output")]
    outputs: Vec<String>,
    /// Secrets for `RUN --mount=type=secret`: `id=ID,src=PATH` or `id=ID,env=VAR`.
    #[arg(long = "secret")]
    secrets: Vec<String>,
    /// Steps running at once (default: 8 × the number of cores).
    #[arg(long)]
    max_parallelism: Option<usize>,
    /// The build context directory, or `-` for a Dockerfile on stdin and no context.
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
}

/// Parses `type=oci|docker|image,dest=PATH`; `None` for `type=image` (the store).
fn parse_output(spec: &str) -> Result<Option<Output>> {
    let mut kind = None;
    let mut dest = None;
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("type", v)) => kind = Some(v.to_string()),
            Some(("dest", v)) => dest = Some(PathBuf::from(v)),
            Some(("name", _)) => {}
            _ => bail!("invalid output {spec:?}: unknown field {field:?}"),
        }
    }
    let format = match kind.as_deref() {
        Some("image") => return Ok(None),
        Some("oci") => image::ArchiveFormat::Oci,
        Some("docker") => image::ArchiveFormat::Docker,
        Some(other) => {
            bail!("output type {other:?} is not supported yet (supported: image, oci, docker)")
        }
        None => bail!("invalid output {spec:?}: type= is required"),
    };
    let dest = dest.ok_or_else(|| anyhow!("output {spec:?} needs dest=FILE"))?;
    Ok(Some(Output { format, dest }))
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
        compression: strata_oci::compression::Compression::None,
        platform: image::host_platform(),
        scratch: None,
    };
    let file = std::fs::File::create(&output.dest)
        .with_context(|| format!("failed to create {}", output.dest.display()))?;
    image::save_images(store, &saved, &options, std::io::BufWriter::new(file))?;
    Ok(())
}

pub fn run(args: Args, root_dir: Option<&Path>) -> Result<ExitCode> {
    let mut outputs = Vec::new();
    for spec in &args.outputs {
        outputs.extend(parse_output(spec)?);
    }
    // `strata build - < Dockerfile`: the Dockerfile comes on stdin and there is no context
    // (an empty directory stands in, so COPY fails with "not found" as in docker).
    let empty_context;
    let (path, context) = if args.context == Path::new("-") {
        empty_context = EmptyDir::new()?;
        (PathBuf::from("-"), empty_context.0.clone())
    } else {
        (
            dockerfile_path(args.file.clone(), &args.context),
            args.context.clone(),
        )
    };
    let src = Source::read(&path)?;
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

    let store = root::open(root_dir)?;
    let build_args = key_values(&args.build_args, true)?;
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
    let mut base_images = HashMap::new();
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
            let record = image::find_image(&store, name).map_err(|e| {
                anyhow!("failed to resolve source metadata for {name}: {e} (pulling is not supported yet: strata load -i IMAGE.tar)")
            })?;
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

    let executor = Executor::new(Backend::Native, store.root().join("v1").join("executor"))?;
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
    let worker = Arc::new(
        LocalWorker::new(store.clone(), executor, contexts)
            .map_err(|e| anyhow!("{e}"))?
            .with_secrets(secrets),
    );
    let graph = Arc::new(lowered.graph);
    let mode = match args.progress {
        Mode::Auto if std::io::stderr().is_terminal() => Mode::Tty,
        Mode::Auto => Mode::Plain,
        other => other,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
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
    let exported = image::export_image(
        &store,
        top.as_ref(),
        &lowered.config,
        layer_of,
        &args.tags,
        &ExportOptions::default(),
    )?;
    if mode != Mode::Quiet {
        for name in &exported.names {
            eprintln!("naming to {name} done");
        }
    }
    println!("{}", exported.config);
    for output in &outputs {
        write_output(&store, output, &exported)?;
    }
    if let Some(path) = &args.metadata_file {
        let metadata = serde_json::json!({
            "containerimage.digest": exported.manifest.to_string(),
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
