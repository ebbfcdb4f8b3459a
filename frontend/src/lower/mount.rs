//! `RUN --mount=…` → exec mounts, as BuildKit's `dispatchRunMounts`, `dispatchSecret` and
//! `dispatchSSH` map them:
//! - `bind`: the build context (no `from=`; a context vertex including only `source`), a
//!   stage's or image's filesystem, at `source` (the selector); read-only unless `rw`, and
//!   a writable bind is never an output (its writes are discarded);
//! - `cache`: id defaulting to the cleaned target, prefixed with the cache namespace and
//!   `/` (`BUILDKIT_CACHE_MOUNT_NS`), sharing, and `mode`/`uid`/`gid` (applied only when no
//!   `source` is given, as BuildKit does); seeded from `from=` when it names a stage or
//!   image (the input); `source` is the selector, a path inside the cache (and seed);
//! - `tmpfs`: size in bytes;
//! - `secret`: id from `id=`/`source=`, else the target's base name; target defaulting to
//!   `/run/secrets/<id>` unless the secret goes to `env=` only (then the target is empty);
//!   mode 0400 by default;
//! - `ssh`: id `default`, target `/run/buildkit/ssh_agent.N` (N counting ssh mounts), mode
//!   0600; the exec's `SSH_AUTH_SOCK` is set to the first one (see `run.rs`).
//!
//! Relative targets are joined onto the working directory. Whether a required secret or
//! agent exists is checked by the worker, which holds the session.

use super::context::context_source;
use super::paths::{base, clean, join};
use super::stage::{Lowerer, StageState};
use super::LowerError;
use crate::instructions::{
    DependencySource, Error, MountError, MountType, RunInstruction, ShareMode,
};
use strata_solver::op::{CacheSharing, MountKind};
use strata_solver::VertexId;

/// A mount before input indices are assigned.
#[derive(Debug, Clone)]
pub struct PlannedMount {
    /// Mount point.
    pub target: String,
    /// The filesystem mounted (`None`: empty).
    pub source: Option<VertexId>,
    /// Path inside `source`.
    pub selector: String,
    /// Read-only.
    pub readonly: bool,
    /// Whether it is an output (only the rootfs is).
    pub output: bool,
    /// Kind.
    pub kind: MountKind,
}

/// The mounts of one RUN, in BuildKit's three groups.
#[derive(Debug, Default)]
pub struct PlannedMounts {
    /// Bind, cache and tmpfs mounts (sorted with the rootfs by target when assembled).
    pub regular: Vec<PlannedMount>,
    /// Secret mounts (after the regular ones).
    pub secrets: Vec<PlannedMount>,
    /// SSH agent sockets (last).
    pub ssh: Vec<PlannedMount>,
    /// Environment variables that receive a secret (masked in progress names).
    pub secret_env: Vec<String>,
}

/// Maps every `--mount` of a RUN.
pub fn plan(
    lw: &mut Lowerer,
    st: &StageState,
    run: &RunInstruction,
    sources: &[DependencySource],
) -> Result<PlannedMounts, LowerError> {
    let line = run.origin.span.start_line;
    let namespace = lw
        .options
        .build_args
        .get("BUILDKIT_CACHE_MOUNT_NS")
        .cloned()
        .unwrap_or_default();
    let mut out = PlannedMounts::default();
    for (i, spec) in run.mounts.iter().enumerate() {
        let m = spec
            .resolved
            .as_ref()
            .ok_or_else(|| LowerError::Unresolved {
                what: format!("mount {:?} was not expanded", spec.raw),
                line,
            })?;
        match m.kind {
            MountType::Secret => {
                let mut id = if m.source.is_empty() {
                    m.id.clone()
                } else {
                    m.source.clone()
                };
                if id.is_empty() {
                    if m.target.is_empty() {
                        return Err(LowerError::Instruction {
                            error: Box::new(Error::Mount {
                                error: MountError::SecretIdUnknown,
                                span: run.origin.span,
                            }),
                            line,
                        });
                    }
                    id = base(&m.target);
                }
                let target = match (&m.env, m.target.is_empty()) {
                    (None, true) => format!("/run/secrets/{}", base(&id)),
                    _ => m.target.clone(),
                };
                if let Some(env) = &m.env {
                    out.secret_env.push(env.clone());
                }
                out.secrets.push(PlannedMount {
                    target,
                    source: None,
                    selector: String::new(),
                    readonly: true,
                    output: false,
                    kind: MountKind::Secret {
                        id,
                        env: m.env.clone(),
                        required: m.required,
                        mode: m.mode.unwrap_or(0o400),
                        uid: m.uid.unwrap_or(0),
                        gid: m.gid.unwrap_or(0),
                    },
                });
                continue;
            }
            MountType::Ssh => {
                let id = if m.id.is_empty() {
                    "default".to_string()
                } else {
                    m.id.clone()
                };
                let target = if m.target.is_empty() {
                    format!("/run/buildkit/ssh_agent.{}", out.ssh.len())
                } else {
                    m.target.clone()
                };
                out.ssh.push(PlannedMount {
                    target,
                    source: None,
                    selector: String::new(),
                    readonly: true,
                    output: false,
                    kind: MountKind::Ssh {
                        id,
                        required: m.required,
                        mode: m.mode.unwrap_or(0o600),
                        uid: m.uid.unwrap_or(0),
                        gid: m.gid.unwrap_or(0),
                    },
                });
                continue;
            }
            _ => {}
        }

        let target = mount_target(&m.target, &st.dir);
        let selector = join(&["/", &m.source]);
        match m.kind {
            MountType::Tmpfs => out.regular.push(PlannedMount {
                target,
                source: None,
                selector,
                readonly: m.read_only,
                output: false,
                kind: MountKind::Tmpfs {
                    size: u64::try_from(m.size_limit).unwrap_or(0),
                },
            }),
            MountType::Bind => {
                let source = if m.from.is_empty() {
                    Some(context_source(
                        lw,
                        std::slice::from_ref(&selector),
                        Some((line, line)),
                    )?)
                } else {
                    mount_source(lw, sources.get(i), &m.from, &m.target, line)?
                };
                out.regular.push(PlannedMount {
                    target,
                    source,
                    selector,
                    readonly: m.read_only,
                    output: false,
                    kind: MountKind::Bind,
                });
            }
            MountType::Cache => {
                let from = if m.from.is_empty() {
                    "scratch"
                } else {
                    &m.from
                };
                let source = mount_source(lw, sources.get(i), from, &m.target, line)?;
                let id = if m.id.is_empty() {
                    clean(&m.target)
                } else {
                    m.id.clone()
                };
                // BuildKit applies mode/uid/gid only to a cache without `source`.
                let (mode, uid, gid) = if selector == "/" {
                    (
                        m.mode.unwrap_or(0o755),
                        m.uid.unwrap_or(0),
                        m.gid.unwrap_or(0),
                    )
                } else {
                    (0o755, 0, 0)
                };
                out.regular.push(PlannedMount {
                    target,
                    source,
                    selector,
                    readonly: m.read_only,
                    output: false,
                    kind: MountKind::Cache {
                        id: format!("{namespace}/{id}"),
                        sharing: match m.sharing {
                            Some(ShareMode::Private) => CacheSharing::Private,
                            Some(ShareMode::Locked) => CacheSharing::Locked,
                            _ => CacheSharing::Shared,
                        },
                        mode,
                        uid,
                        gid,
                    },
                });
            }
            MountType::Secret | MountType::Ssh => {}
        }
    }
    Ok(out)
}

/// An absolute target is kept as written; a relative one is joined onto the working
/// directory.
pub fn mount_target(target: &str, dir: &str) -> String {
    if clean(target).starts_with('/') {
        target.to_string()
    } else {
        join(&["/", dir, target])
    }
}

/// The filesystem `from=` names: `None` for the empty one.
fn mount_source(
    lw: &mut Lowerer,
    source: Option<&DependencySource>,
    from: &str,
    target: &str,
    line: usize,
) -> Result<Option<VertexId>, LowerError> {
    let fallback = DependencySource::Image(from.to_string());
    let source = source.unwrap_or(&fallback);
    if lw.is_empty_fs(source) {
        return Ok(None);
    }
    match lw.dependency_vertex(source, line)? {
        Some(v) => Ok(Some(v)),
        None => Err(LowerError::MountFromLaterStage {
            from: from.to_string(),
            target: target.to_string(),
            line,
        }),
    }
}
