//! The image config and history that lowering computes beside the graph.
//!
//! Role: plain serde structs with Docker's JSON field names (the `application/vnd.oci.image
//! .config.v1+json` document as Docker and BuildKit write it: OCI fields plus Docker's
//! `Healthcheck`, `OnBuild`, `Shell`), so the exporter can map them to the OCI JSON without
//! renaming anything. Base image configs arrive in the same shape ([`Image`] deserializes
//! a registry config blob as is).
//!
//! Main types: [`Image`], [`ContainerConfig`], [`HealthConfig`], [`History`], [`RootFs`].
//!
//! Key decision: empty fields are omitted exactly where Go's `omitempty` omits them, and
//! maps are ordered (Go sorts map keys when encoding), so serializing a config gives the
//! bytes BuildKit would write — up to `created` and `rootfs.diff_ids`, which the exporter
//! fills in. History entries of layer-producing instructions carry the graph vertex that
//! produces the layer ([`History::layer`], not serialized), so the exporter can decide
//! `empty_layer` from the actual diff.

use crate::instructions::{BaseImage, HealthConfig as InstructionHealth};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use strata_solver::VertexId;

/// BuildKit's history comment for Dockerfile steps.
pub const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// The JSON value `{}`: the value type of `ExposedPorts` and `Volumes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Empty {}

/// An image config document (Docker's `DockerOCIImage`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Image {
    /// Creation time (RFC 3339); lowering sets it only from `SOURCE_DATE_EPOCH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// `MAINTAINER`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// `amd64`, `arm64`…
    #[serde(default)]
    pub architecture: String,
    /// `linux`.
    #[serde(default)]
    pub os: String,
    /// Windows OS version.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub os_version: String,
    /// CPU variant (`v8`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    /// The runtime config.
    #[serde(default)]
    pub config: ContainerConfig,
    /// Layer digests (inherited from the base; the exporter recomputes them).
    #[serde(default)]
    pub rootfs: RootFs,
    /// One entry per instruction that BuildKit commits, base image entries first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
}

/// The `rootfs` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Uncompressed layer digests.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".to_string(),
            diff_ids: Vec::new(),
        }
    }
}

/// The `config` object: what a container of the image runs with.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `USER`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// `EXPOSE`: `80/tcp` → `{}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, Empty>,
    /// `KEY=VALUE` entries (base image, then `ENV`; never `ARG`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// `ENTRYPOINT`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    /// `CMD`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    /// `VOLUME`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Empty>,
    /// `WORKDIR`, normalized.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    /// `LABEL` and `--label`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `STOPSIGNAL`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    /// Set by BuildKit on every `CMD` (a Windows-only flag it keeps for compatibility).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub args_escaped: bool,
    /// `HEALTHCHECK`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// `ONBUILD` triggers, as written after the keyword.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_build: Vec<String>,
    /// `SHELL`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shell: Vec<String>,
}

/// Docker's `HealthcheckConfig`; durations in nanoseconds, zero meaning "default".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", …]` or `["CMD-SHELL", command]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    /// `--interval`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: u64,
    /// `--timeout`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: u64,
    /// `--start-period`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: u64,
    /// `--start-interval`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: u64,
    /// `--retries`.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub retries: i64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

impl From<&InstructionHealth> for HealthConfig {
    fn from(h: &InstructionHealth) -> Self {
        let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        HealthConfig {
            test: h.test.clone(),
            interval: nanos(h.interval),
            timeout: nanos(h.timeout),
            start_period: nanos(h.start_period),
            start_interval: nanos(h.start_interval),
            retries: h.retries,
        }
    }
}

/// One history entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct History {
    /// RFC 3339 time; lowering sets it only from `SOURCE_DATE_EPOCH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The instruction as BuildKit records it (`RUN /bin/sh -c make # buildkit`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    /// Author.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// `buildkit.dockerfile.v0` for Dockerfile steps.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// The step made no filesystem change. For RUN/COPY/ADD/WORKDIR lowering writes
    /// `false`; the exporter sets it when the diff of [`History::layer`] turns out empty.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
    /// The vertex whose result is this entry's layer (its diff against its base), for
    /// entries lowering created with a layer. Not part of the JSON.
    #[serde(skip)]
    pub layer: Option<VertexId>,
}

impl Image {
    /// BuildKit's `emptyImage`: the config of `FROM scratch` for a platform (working
    /// directory `/`, the default `PATH` except on Windows).
    pub fn empty(platform: &crate::instructions::Platform) -> Image {
        let mut image = Image {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            os_version: platform.os_version.clone(),
            variant: platform.variant.clone(),
            ..Image::default()
        };
        image.config.working_dir = "/".to_string();
        if platform.os != "windows" {
            image.config.env = vec![format!("PATH={}", crate::instructions::DEFAULT_PATH)];
        }
        image
    }

    /// What stage resolution needs to know of this image as a base: its `Env`,
    /// `WorkingDir` and `OnBuild` triggers. Pass the result in
    /// [`crate::instructions::ResolveOptions::base_images`] under the same name as in
    /// [`super::LowerOptions::base_images`], so both steps see the same base.
    pub fn to_base_image(&self) -> BaseImage {
        BaseImage {
            env: self.config.env.clone(),
            working_dir: self.config.working_dir.clone(),
            onbuild: self.config.on_build.clone(),
        }
    }

    /// Whether the image has no layer (BuildKit then starts from scratch).
    pub fn has_no_layers(&self) -> bool {
        self.rootfs.diff_ids.is_empty() && self.history.iter().all(|h| h.empty_layer)
    }

    /// BuildKit's `commitToHistory`: appends an entry. `layer` is the vertex producing the
    /// layer (`None` for metadata-only steps, which are `empty_layer`); `buildkit_suffix`
    /// appends ` # buildkit` as BuildKit does for steps that carry a graph state.
    pub(super) fn commit(
        &mut self,
        created_by: String,
        layer: Option<VertexId>,
        buildkit_suffix: bool,
        created: &Option<String>,
    ) {
        let mut created_by = created_by;
        if buildkit_suffix {
            created_by.push_str(" # buildkit");
        }
        self.history.push(History {
            created: created.clone(),
            created_by,
            author: String::new(),
            comment: HISTORY_COMMENT.to_string(),
            empty_layer: layer.is_none(),
            layer,
        });
    }
}

/// BuildKit's `addEnv` on a config `Env` list: replaces the first entry for `key` in place
/// (an entry without `=` counts as the key), appends otherwise.
pub fn add_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    for existing in env.iter_mut() {
        let name = existing
            .split_once('=')
            .map_or(existing.as_str(), |(k, _)| k);
        if name == key {
            *existing = entry;
            return;
        }
    }
    env.push(entry);
}

/// Formats Unix seconds as RFC 3339 UTC (`2024-01-02T03:04:05Z`), as Go's `time.Time`
/// marshals a whole-second UTC time.
pub fn rfc3339(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    // Howard Hinnant's days → civil date.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_env_replaces_in_place() {
        let mut env = vec!["PATH=/bin".to_string(), "A".to_string(), "B=1".to_string()];
        add_env(&mut env, "A", "x");
        add_env(&mut env, "C", "y");
        add_env(&mut env, "PATH", "/usr/bin");
        assert_eq!(env, vec!["PATH=/usr/bin", "A=x", "B=1", "C=y"]);
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn json_shape_matches_docker() {
        let mut image = Image::empty(&crate::instructions::Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            ..Default::default()
        });
        image.config.exposed_ports.insert("80/tcp".into(), Empty {});
        image.config.healthcheck = Some(HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        });
        image.commit("ENV a=b".into(), None, false, &None);
        let json = serde_json::to_string(&image).unwrap();
        assert_eq!(
            json,
            r#"{"architecture":"amd64","os":"linux","config":{"ExposedPorts":{"80/tcp":{}},"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"WorkingDir":"/","Healthcheck":{"Test":["NONE"]}},"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"ENV a=b","comment":"buildkit.dockerfile.v0","empty_layer":true}]}"#
        );
        let back: Image = serde_json::from_str(&json).unwrap();
        assert_eq!(back, image);
    }
}
