//! Source vertices: the build context, base images and the empty filesystem.
//!
//! The build context is a `Local { name: "context" }` source. BuildKit sends one context
//! filtered to every path any step uses; here each step that reads the context gets a
//! context vertex whose `include` (and `follow_paths`) are exactly the paths that step
//! names, with the `.dockerignore` patterns as `exclude`. The worker checksums only what a
//! context vertex includes, so editing a file a COPY does not select never changes that
//! COPY's cache key. Steps naming the same paths share one vertex.

use super::paths::join;
use super::stage::{graph_platform, Lowerer};
use super::LowerError;
use crate::instructions::{parse_image_reference, Platform};
use strata_solver::op::{FileAction, FileOp, Op, SourceOp, VertexMeta};
use strata_solver::VertexId;

/// Name of the main context's local source, as in BuildKit.
pub const CONTEXT_NAME: &str = "context";

/// The progress name BuildKit gives the context transfer.
const CONTEXT_VERTEX_NAME: &str = "[internal] load build context";

/// BuildKit's `normalizeContextPaths`: root-relative paths, sorted, deduplicated; none at
/// all (the whole context) when one of them is the root.
pub fn include_paths(paths: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(paths.len());
    for p in paths {
        let rooted = join(&["/", p]);
        if rooted == "/" {
            return Vec::new();
        }
        out.push(rooted.trim_start_matches('/').to_string());
    }
    out.sort();
    out.dedup();
    out
}

/// The context vertex for a step reading `paths` (as written in the Dockerfile) on `lines`
/// (kept so that a missing source is reported at the instruction that names it).
pub fn context_source(
    lw: &mut Lowerer,
    paths: &[String],
    lines: Option<(usize, usize)>,
) -> Result<VertexId, LowerError> {
    let include = include_paths(paths);
    let op = Op::Source(SourceOp::Local {
        name: CONTEXT_NAME.to_string(),
        include: include.clone(),
        exclude: lw.options.dockerignore.clone(),
        follow_paths: include,
    });
    let meta = VertexMeta {
        name: CONTEXT_VERTEX_NAME.to_string(),
        lines,
        ..VertexMeta::default()
    };
    lw.add(op, Vec::new(), meta)
}

/// The empty filesystem. BuildKit has no vertex for it; ours is unnamed, so progress
/// renderers can hide it.
pub fn scratch(lw: &mut Lowerer) -> Result<VertexId, LowerError> {
    lw.add(
        Op::Source(SourceOp::Scratch),
        Vec::new(),
        VertexMeta::default(),
    )
}

/// The reference BuildKit pulls for `name`: normalized with `:latest` added
/// (`docker.io/library/alpine:latest`), pinned to the resolved digest when the caller knows
/// it.
pub fn image_reference(name: &str, digest: Option<&str>) -> String {
    let tagged = parse_image_reference(name)
        .map(|r| r.to_tagged_string())
        .unwrap_or_else(|_| name.to_string());
    match digest {
        Some(d) if !d.is_empty() => {
            let bare = tagged.split_once('@').map_or(tagged.as_str(), |(n, _)| n);
            format!("{bare}@{d}")
        }
        _ => tagged,
    }
}

/// An image source vertex with the given progress name.
pub fn image_source(
    lw: &mut Lowerer,
    reference: String,
    platform: &Platform,
    name: String,
    lines: Option<(usize, usize)>,
) -> Result<VertexId, LowerError> {
    let op = Op::Source(SourceOp::Image {
        reference,
        platform: graph_platform(platform),
    });
    let meta = VertexMeta {
        name,
        lines,
        ..VertexMeta::default()
    };
    lw.add(op, Vec::new(), meta)
}

/// The filesystem of an image used outside FROM (`COPY --from=image`,
/// `--mount from=image`): scratch for `scratch` and for a known image without layers.
/// `name` is the progress name, or `FROM <reference>` when `None`.
pub fn image_or_scratch(
    lw: &mut Lowerer,
    image: &str,
    platform: &Platform,
    name: Option<String>,
    line: usize,
) -> Result<VertexId, LowerError> {
    if image == "scratch" {
        return scratch(lw);
    }
    let known = lw.options.base_images.get(image);
    if known.is_some_and(|b| b.image.has_no_layers()) {
        return scratch(lw);
    }
    let reference = image_reference(image, known.and_then(|b| b.digest.as_deref()));
    let name = name.unwrap_or_else(|| format!("FROM {reference}"));
    let lines = (line > 0).then_some((line, line));
    image_source(lw, reference, platform, name, lines)
}

/// BuildKit's inline documents (heredoc COPY sources, `#!` heredoc RUN scripts): a file
/// created on the empty filesystem, in a vertex of its own.
pub fn inline_document(
    lw: &mut Lowerer,
    path: &str,
    data: Vec<u8>,
    mode: u32,
) -> Result<VertexId, LowerError> {
    let op = Op::File(FileOp {
        has_base: false,
        actions: vec![FileAction::Mkfile {
            path: path.to_string(),
            data,
            mode,
            owner: None,
        }],
    });
    let meta = VertexMeta {
        name: "[internal] preparing inline document".to_string(),
        ..VertexMeta::default()
    };
    lw.add(op, Vec::new(), meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_sets() {
        let p = |v: &[&str]| include_paths(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(p(&["b", "./a/", "/c/../a"]), vec!["a", "b"]);
        assert_eq!(p(&["src", "."]), Vec::<String>::new());
        assert_eq!(p(&["*.go"]), vec!["*.go"]);
    }

    #[test]
    fn references() {
        assert_eq!(
            image_reference("alpine", None),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(
            image_reference("ghcr.io/o/app:1", Some("sha256:ab")),
            "ghcr.io/o/app:1@sha256:ab"
        );
        let pinned = format!("busybox@sha256:{}", "0".repeat(64));
        assert_eq!(
            image_reference(&pinned, Some("sha256:ff")),
            "docker.io/library/busybox@sha256:ff"
        );
        // A reference that does not parse is used as written.
        assert_eq!(image_reference("Bad Name", None), "Bad Name");
    }
}
