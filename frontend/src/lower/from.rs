//! `FROM`: where a stage starts — the empty filesystem, an image (with its config, as the
//! caller resolved it), or another stage's final state — and BuildKit's stage
//! initialization: the default `PATH`, the base config's `Env` in the environment, its
//! `WorkingDir` and `User` in force.

use super::config::Image;
use super::context::{image_reference, image_source};
use super::paths::normalize_path;
use super::stage::{step_name, step_total, Lowerer, StageState, StateEnv};
use super::LowerError;
use crate::instructions::{ResolvedStage, StageBase, DEFAULT_PATH};

/// The state a stage starts from, before its first instruction.
pub fn start_stage(
    lw: &mut Lowerer,
    index: usize,
    resolved: &ResolvedStage,
) -> Result<StageState, LowerError> {
    let lines = Some((resolved.span.start_line, resolved.span.end_line));
    let triggers = resolved.onbuild_triggers.min(resolved.instructions.len());
    let ignore_cache = lw
        .options
        .no_cache_filter
        .iter()
        .any(|n| n.eq_ignore_ascii_case(&resolved.name));
    let mut st = match &resolved.base {
        StageBase::Stage(b) => {
            let base = lw.stages.get(*b).and_then(Option::as_ref).ok_or_else(|| {
                LowerError::Unresolved {
                    what: format!("base stage {b} of stage {index}"),
                    line: resolved.span.start_line,
                }
            })?;
            let mut st = base.clone();
            // Triggers never carry over from a base stage.
            st.image.config.on_build.clear();
            st.cmd_index = 0;
            st.cmd_set = false;
            st
        }
        StageBase::Scratch => {
            let platform = lw.target_platform.clone();
            new_state(None, Image::empty(&platform), platform)
        }
        StageBase::Image(name) => {
            let platform = resolved
                .platform
                .clone()
                .unwrap_or_else(|| lw.target_platform.clone());
            let known = lw.options.base_images.get(name);
            let mut image = match known {
                Some(b) => b.image.clone(),
                None => Image {
                    architecture: platform.architecture.clone(),
                    os: platform.os.clone(),
                    variant: platform.variant.clone(),
                    ..Image::default()
                },
            };
            image.created = None;
            // The image's triggers fire in this stage (resolution put them first) and are
            // not passed on.
            image.config.on_build.clear();
            let reference = image_reference(name, known.and_then(|b| b.digest.as_deref()));
            let no_layers = known.is_some() && image.has_no_layers();
            if no_layers {
                new_state(None, image, platform)
            } else {
                let total = step_total(&resolved.base, &resolved.instructions, triggers);
                let text = format!("FROM {reference}");
                let name = if total == 0 {
                    text
                } else {
                    let prefix = lw.options.multi_platform.then_some((&platform, ""));
                    step_name(&resolved.name, prefix, 1, total, false, &text)
                };
                let vertex = image_source(lw, reference, &platform, name, lines)?;
                let mut st = new_state(Some(vertex), image, platform);
                st.cmd_index = usize::from(total > 0);
                st
            }
        }
    };
    st.index = index;
    st.name = resolved.name.clone();
    st.cmd_total = step_total(&resolved.base, &resolved.instructions, triggers);
    st.ignore_cache = ignore_cache;
    st.lines = lines;

    // BuildKit's dispatchStages: PATH always set (except on Windows), the config's Env
    // (re)applied to the environment, WorkingDir and User put in force.
    let has_path = st
        .image
        .config
        .env
        .iter()
        .any(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == "PATH");
    if !has_path && st.platform.os != "windows" {
        st.image.config.env.push(format!("PATH={DEFAULT_PATH}"));
    }
    for entry in st.image.config.env.clone() {
        let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
        st.env.set(k, v);
    }
    if !st.image.config.working_dir.is_empty() {
        let wd = normalize_path("/", &st.image.config.working_dir, false);
        st.image.config.working_dir = wd.clone();
        st.dir = wd;
    }
    if !st.image.config.user.is_empty() {
        st.user = st.image.config.user.clone();
    }
    st.network = lw.options.network;
    Ok(st)
}

fn new_state(
    vertex: Option<strata_solver::VertexId>,
    image: Image,
    platform: crate::instructions::Platform,
) -> StageState {
    StageState {
        index: 0,
        name: String::new(),
        vertex,
        env: StateEnv::default(),
        dir: "/".to_string(),
        user: String::new(),
        network: Default::default(),
        platform,
        image,
        build_args: Vec::new(),
        cmd_total: 0,
        cmd_index: 0,
        cmd_is_onbuild: false,
        cmd_set: false,
        ignore_cache: false,
        lines: None,
    }
}
