//! The lowering's image config ([`lower::Image`]) ↔ the OCI image config
//! ([`strata_oci::ImageConfig`]).
//!
//! Main functions: [`to_oci_config`] (what the exporter encodes) and [`from_oci_config`]
//! (a stored base image's config as the lowering takes it for `FROM`).
//!
//! Key decision: both types carry Docker's field names one for one, so the mapping is a
//! field-by-field copy with no defaults invented here; only the representations differ
//! (healthcheck durations as integer nanoseconds vs `Duration`, diff ids as strings vs
//! digests). `rootfs` and the history's `empty_layer` are the exporter's business: it
//! recomputes them from the snapshots.

use std::time::Duration;

use strata_frontend::lower::config as lower;
use strata_oci::config::{self as oci, EmptyObject};
use strata_oci::ImageConfig;

/// The OCI config for `image`, with `rootfs.diff_ids` left empty and the history copied as
/// is (the exporter fills in both).
pub fn to_oci_config(image: &lower::Image) -> ImageConfig {
    let c = &image.config;
    ImageConfig {
        architecture: image.architecture.clone(),
        author: image.author.clone(),
        config: oci::ContainerConfig {
            user: c.user.clone(),
            exposed_ports: c
                .exposed_ports
                .keys()
                .map(|k| (k.clone(), EmptyObject))
                .collect(),
            env: c.env.clone(),
            entrypoint: c.entrypoint.clone(),
            cmd: c.cmd.clone(),
            volumes: c.volumes.keys().map(|k| (k.clone(), EmptyObject)).collect(),
            working_dir: c.working_dir.clone(),
            labels: c.labels.clone(),
            stop_signal: c.stop_signal.clone(),
            args_escaped: c.args_escaped,
            healthcheck: c.healthcheck.as_ref().map(|h| oci::HealthConfig {
                test: h.test.clone(),
                interval: Duration::from_nanos(h.interval),
                timeout: Duration::from_nanos(h.timeout),
                start_period: Duration::from_nanos(h.start_period),
                start_interval: Duration::from_nanos(h.start_interval),
                retries: h.retries,
            }),
            on_build: c.on_build.clone(),
            shell: c.shell.clone(),
        },
        created: image.created.clone(),
        history: image
            .history
            .iter()
            .map(|h| oci::History {
                created: h.created.clone(),
                created_by: h.created_by.clone(),
                author: h.author.clone(),
                comment: h.comment.clone(),
                empty_layer: h.empty_layer,
            })
            .collect(),
        os: image.os.clone(),
        os_features: Vec::new(),
        os_version: image.os_version.clone(),
        rootfs: oci::RootFs::default(),
        variant: image.variant.clone(),
    }
}

/// The lowering's view of a stored config (a `FROM` base): every field, history entries
/// without a vertex.
pub fn from_oci_config(config: &ImageConfig) -> lower::Image {
    let c = &config.config;
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    lower::Image {
        created: config.created.clone(),
        author: config.author.clone(),
        architecture: config.architecture.clone(),
        os: config.os.clone(),
        os_version: config.os_version.clone(),
        variant: config.variant.clone(),
        config: lower::ContainerConfig {
            user: c.user.clone(),
            exposed_ports: c
                .exposed_ports
                .keys()
                .map(|k| (k.clone(), lower::Empty {}))
                .collect(),
            env: c.env.clone(),
            entrypoint: c.entrypoint.clone(),
            cmd: c.cmd.clone(),
            volumes: c
                .volumes
                .keys()
                .map(|k| (k.clone(), lower::Empty {}))
                .collect(),
            working_dir: c.working_dir.clone(),
            labels: c.labels.clone(),
            stop_signal: c.stop_signal.clone(),
            args_escaped: c.args_escaped,
            healthcheck: c.healthcheck.as_ref().map(|h| lower::HealthConfig {
                test: h.test.clone(),
                interval: nanos(h.interval),
                timeout: nanos(h.timeout),
                start_period: nanos(h.start_period),
                start_interval: nanos(h.start_interval),
                retries: h.retries,
            }),
            on_build: c.on_build.clone(),
            shell: c.shell.clone(),
        },
        rootfs: lower::RootFs {
            kind: config.rootfs.kind.clone(),
            diff_ids: config
                .rootfs
                .diff_ids
                .iter()
                .map(ToString::to_string)
                .collect(),
        },
        history: config
            .history
            .iter()
            .map(|h| lower::History {
                created: h.created.clone(),
                created_by: h.created_by.clone(),
                author: h.author.clone(),
                comment: h.comment.clone(),
                empty_layer: h.empty_layer,
                layer: None,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_round_trip_and_encode_like_the_lowering() {
        let mut image = lower::Image {
            architecture: "amd64".into(),
            os: "linux".into(),
            author: "me".into(),
            ..lower::Image::default()
        };
        image.config.env = vec!["PATH=/bin".into()];
        image.config.cmd = vec!["sh".into()];
        image
            .config
            .exposed_ports
            .insert("80/tcp".into(), lower::Empty {});
        image.config.volumes.insert("/data".into(), lower::Empty {});
        image.config.labels.insert("a".into(), "b".into());
        image.config.healthcheck = Some(lower::HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval: 5_000_000_000,
            retries: 3,
            ..lower::HealthConfig::default()
        });
        image.history.push(lower::History {
            created_by: "RUN x".into(),
            comment: lower::HISTORY_COMMENT.into(),
            ..lower::History::default()
        });
        let oci = to_oci_config(&image);
        assert_eq!(
            oci.config.healthcheck.as_ref().unwrap().interval,
            Duration::from_secs(5)
        );
        assert_eq!(from_oci_config(&oci), image);
        // Same JSON as the lowering's own serialization for every shared field.
        let ours: serde_json::Value = serde_json::from_slice(&oci.to_json().unwrap()).unwrap();
        let theirs = serde_json::to_value(&image).unwrap();
        assert_eq!(ours["config"], theirs["config"]);
        assert_eq!(ours["history"], theirs["history"]);
    }
}
