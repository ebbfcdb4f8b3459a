//! The image config: the JSON document a manifest's `config` descriptor points at.
//!
//! [`ImageConfig`] is the Docker-compatible superset of the OCI image config, field for field
//! what BuildKit writes (moby's `dockerspec.DockerOCIImage`): the OCI fields plus Docker's
//! `Healthcheck`, `OnBuild` and `Shell`. Encoding follows BuildKit's exporter exactly:
//!
//! - top-level keys in sorted order (BuildKit re-marshals the config through a
//!   `map[string]json.RawMessage`), `config` and `rootfs` always present;
//! - the container config (`config`) in Go struct order, every field omitted when empty;
//! - `Healthcheck` durations as integer nanoseconds, omitted when zero;
//! - Go's string escaping (see [`crate::canonical_json`]).
//!
//! Decoding is tolerant: unknown fields (legacy Docker's `container_config`, `Hostname`…)
//! are ignored and `null` reads as empty, so configs of any pulled image can be read.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::canonical_json::{self, null_as_default, JsonError};
use crate::digest::Digest;
use crate::manifest::Platform;

/// Errors reading or writing an image config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The bytes are not a valid image config.
    #[error("invalid image config: {source}")]
    Parse {
        /// The JSON decoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// Encoding failed.
    #[error(transparent)]
    Encode(#[from] JsonError),
    /// A `created` value is not an RFC 3339 timestamp.
    #[error("invalid timestamp {value:?} (expected RFC 3339, e.g. 2024-01-02T03:04:05Z)")]
    InvalidTimestamp {
        /// The rejected value.
        value: String,
    },
}

/// An image config (`application/vnd.oci.image.config.v1+json` /
/// `application/vnd.docker.container.image.v1+json`).
///
/// Fields are declared in the order they are encoded (sorted keys, as BuildKit writes them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// CPU architecture (`amd64`, `arm64`, …). Always encoded.
    #[serde(default, deserialize_with = "null_as_default")]
    pub architecture: String,
    /// Author of the image.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub author: String,
    /// The default runtime configuration of containers. Always encoded (`{}` when empty).
    #[serde(default, deserialize_with = "null_as_default")]
    pub config: ContainerConfig,
    /// Creation time, RFC 3339 (see [`format_timestamp`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// One entry per build step, layer-creating or not.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub history: Vec<History>,
    /// Operating system (`linux`). Always encoded.
    #[serde(default, deserialize_with = "null_as_default")]
    pub os: String,
    /// Required OS features (Windows).
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub os_features: Vec<String>,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub os_version: String,
    /// The layers' uncompressed digests. Always encoded.
    #[serde(default, deserialize_with = "null_as_default")]
    pub rootfs: RootFs,
    /// CPU variant (`v7`, `v8`).
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub variant: String,
}

/// The runtime defaults (`config` in the image config; Docker calls it the container config).
///
/// Field order and names are those of OCI's `ImageConfig` followed by Docker's extension, as
/// BuildKit encodes them; every field is omitted when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `USER`: `name`, `uid`, `name:group`, `uid:gid`.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub user: String,
    /// `EXPOSE`: keys like `80/tcp`.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub exposed_ports: BTreeMap<String, EmptyObject>,
    /// `ENV`: `KEY=value` entries.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub env: Vec<String>,
    /// `ENTRYPOINT`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub entrypoint: Vec<String>,
    /// `CMD`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub cmd: Vec<String>,
    /// `VOLUME`: keys are container paths.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub volumes: BTreeMap<String, EmptyObject>,
    /// `WORKDIR`.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub working_dir: String,
    /// `LABEL`.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub labels: BTreeMap<String, String>,
    /// `STOPSIGNAL`.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub stop_signal: String,
    /// Whether `Cmd`/`Entrypoint` are already escaped (Windows shell form).
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "null_as_default"
    )]
    pub args_escaped: bool,
    /// `HEALTHCHECK`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// `ONBUILD` triggers, verbatim.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub on_build: Vec<String>,
    /// `SHELL`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub shell: Vec<String>,
}

/// `HEALTHCHECK` settings; zero durations mean "inherit".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `[]` inherit, `["NONE"]` disabled, `["CMD", args…]`, `["CMD-SHELL", command]`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub test: Vec<String>,
    /// Time between checks (integer nanoseconds in JSON).
    #[serde(
        default,
        skip_serializing_if = "Duration::is_zero",
        with = "nanoseconds"
    )]
    pub interval: Duration,
    /// Time after which one check counts as failed.
    #[serde(
        default,
        skip_serializing_if = "Duration::is_zero",
        with = "nanoseconds"
    )]
    pub timeout: Duration,
    /// Start-up grace period.
    #[serde(
        default,
        skip_serializing_if = "Duration::is_zero",
        with = "nanoseconds"
    )]
    pub start_period: Duration,
    /// Time between checks during the start period.
    #[serde(
        default,
        skip_serializing_if = "Duration::is_zero",
        with = "nanoseconds"
    )]
    pub start_interval: Duration,
    /// Consecutive failures before unhealthy.
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "null_as_default"
    )]
    pub retries: i64,
}

/// The `rootfs` object: layer diff IDs in order, bottom first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type", default, deserialize_with = "null_as_default")]
    pub kind: String,
    /// The sha256 of each layer's uncompressed tar. Encoded as `[]` when empty (never `null`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".to_owned(),
            diff_ids: Vec::new(),
        }
    }
}

/// One history entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// When the step ran, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The instruction, e.g. `RUN /bin/sh -c make # buildkit`.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub created_by: String,
    /// Author.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub author: String,
    /// Free text; BuildKit writes `buildkit.dockerfile.v0`.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub comment: String,
    /// True when the step produced no layer.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "null_as_default"
    )]
    pub empty_layer: bool,
}

/// An empty JSON object (`{}`): the value type of Go's `map[string]struct{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EmptyObject;

impl Serialize for EmptyObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        serializer.serialize_map(Some(0))?.end()
    }
}

impl<'de> Deserialize<'de> for EmptyObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer)?;
        Ok(EmptyObject)
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

/// `Duration` as Go's `time.Duration` in JSON: integer nanoseconds.
mod nanoseconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        let nanos = i64::try_from(value.as_nanos())
            .map_err(|_| serde::ser::Error::custom("duration too large for nanoseconds"))?;
        serializer.serialize_i64(nanos)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let nanos = Option::<i64>::deserialize(deserializer)?.unwrap_or(0);
        let nanos = u64::try_from(nanos)
            .map_err(|_| serde::de::Error::custom("negative duration in healthcheck"))?;
        Ok(Duration::from_nanos(nanos))
    }
}

impl ImageConfig {
    /// Decodes a config blob.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        serde_json::from_slice(bytes).map_err(|source| ConfigError::Parse { source })
    }

    /// Encodes the config canonically (compact, as BuildKit writes it).
    pub fn to_json(&self) -> Result<Vec<u8>, ConfigError> {
        Ok(canonical_json::to_vec(self)?)
    }

    /// The platform this config describes.
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
            variant: self.variant.clone(),
            features: Vec::new(),
        }
    }

    /// Rewrites `created` and every history `created` later than `epoch` (Unix seconds) to
    /// `epoch`, and fills missing history times with it: what `SOURCE_DATE_EPOCH` asks for.
    pub fn clamp_timestamps(&mut self, epoch: i64) -> Result<(), ConfigError> {
        let clamped = format_timestamp(epoch, 0);
        let clamp = |value: &mut Option<String>| -> Result<(), ConfigError> {
            match value {
                Some(text) if parse_timestamp(text)? <= (epoch, 0) => {}
                _ => *value = Some(clamped.clone()),
            }
            Ok(())
        };
        clamp(&mut self.created)?;
        for entry in &mut self.history {
            clamp(&mut entry.created)?;
        }
        Ok(())
    }
}

/// Formats a Unix time as Go's `time.RFC3339Nano` in UTC (what Go's `time.Time` marshals
/// to): `2024-01-02T03:04:05.5Z`, fractional zeros trimmed, no fraction when whole.
pub fn format_timestamp(unix_seconds: i64, nanos: u32) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let secs_of_day = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    );
    if nanos > 0 {
        let fraction = format!("{:09}", nanos.min(999_999_999));
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Parses an RFC 3339 timestamp (`Z` or `±hh:mm` offset, optional fraction) into Unix
/// seconds and nanoseconds.
pub fn parse_timestamp(text: &str) -> Result<(i64, u32), ConfigError> {
    let invalid = || ConfigError::InvalidTimestamp {
        value: text.to_owned(),
    };
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(invalid());
    }
    if b[13] != b':' || b[16] != b':' {
        return Err(invalid());
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, ConfigError> {
        let part = text.get(range).ok_or_else(invalid)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(invalid());
        }
        part.parse::<i64>().map_err(|_| invalid())
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return Err(invalid());
    }
    if second > 60 {
        return Err(invalid());
    }
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        for (i, c) in fraction.bytes().take(digits).enumerate() {
            if i < 9 {
                nanos = nanos * 10 + u32::from(c - b'0');
            }
        }
        for _ in digits..9 {
            nanos *= 10;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(rest.as_bytes()[0], b'+' | b'-') => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            let hours = num(text.len() - 5..text.len() - 3)?;
            let minutes = num(text.len() - 2..text.len())?;
            if rest.as_bytes()[3] != b':' {
                return Err(invalid());
            }
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return Err(invalid()),
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Ok((seconds, nanos))
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) → days since 1970-01-01, proleptic Gregorian.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ImageConfig {
        let mut config = ImageConfig {
            architecture: "amd64".into(),
            os: "linux".into(),
            created: Some("2024-01-02T03:04:05.123456789Z".into()),
            ..Default::default()
        };
        config.config.user = "app".into();
        config
            .config
            .exposed_ports
            .insert("80/tcp".into(), EmptyObject);
        config.config.env = vec!["PATH=/usr/bin:/bin".into()];
        config.config.entrypoint = vec!["/entry".into()];
        config.config.cmd = vec!["serve".into()];
        config.config.volumes.insert("/data".into(), EmptyObject);
        config.config.working_dir = "/app".into();
        config.config.labels.insert("a".into(), "b&c".into());
        config.config.stop_signal = "SIGTERM".into();
        config.config.args_escaped = true;
        config.config.healthcheck = Some(HealthConfig {
            test: vec!["CMD-SHELL".into(), "true".into()],
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            start_period: Duration::ZERO,
            start_interval: Duration::from_millis(500),
            retries: 3,
        });
        config.config.on_build = vec!["RUN true".into()];
        config.config.shell = vec!["/bin/sh".into(), "-c".into()];
        config.rootfs.diff_ids = vec![Digest::of(b"layer")];
        config.history = vec![
            History {
                created: Some("2024-01-02T03:04:05Z".into()),
                created_by: "RUN make".into(),
                comment: "buildkit.dockerfile.v0".into(),
                ..Default::default()
            },
            History {
                created_by: "ENV A=b".into(),
                empty_layer: true,
                ..Default::default()
            },
        ];
        config
    }

    #[test]
    fn encodes_like_buildkit() {
        let json = String::from_utf8(sample().to_json().unwrap()).unwrap();
        let expected = concat!(
            r#"{"architecture":"amd64","config":{"User":"app","ExposedPorts":{"80/tcp":{}},"#,
            r#""Env":["PATH=/usr/bin:/bin"],"Entrypoint":["/entry"],"Cmd":["serve"],"#,
            r#""Volumes":{"/data":{}},"WorkingDir":"/app","Labels":{"a":"b\u0026c"},"#,
            r#""StopSignal":"SIGTERM","ArgsEscaped":true,"Healthcheck":{"Test":["CMD-SHELL","true"],"#,
            r#""Interval":30000000000,"Timeout":5000000000,"StartInterval":500000000,"Retries":3},"#,
            r#""OnBuild":["RUN true"],"Shell":["/bin/sh","-c"]},"#,
            r#""created":"2024-01-02T03:04:05.123456789Z","history":[{"created":"2024-01-02T03:04:05Z","#,
            r#""created_by":"RUN make","comment":"buildkit.dockerfile.v0"},"#,
            r#"{"created_by":"ENV A=b","empty_layer":true}],"os":"linux","#,
            r#""rootfs":{"type":"layers","diff_ids":["sha256:"#
        );
        assert!(json.starts_with(expected), "{json}");
    }

    #[test]
    fn empty_config_keeps_required_fields() {
        let json = String::from_utf8(ImageConfig::default().to_json().unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"architecture":"","config":{},"os":"","rootfs":{"type":"layers","diff_ids":[]}}"#
        );
    }

    #[test]
    fn round_trips_and_is_stable() {
        let config = sample();
        let bytes = config.to_json().unwrap();
        let back = ImageConfig::from_json(&bytes).unwrap();
        assert_eq!(back, config);
        assert_eq!(back.to_json().unwrap(), bytes);
    }

    #[test]
    fn reads_legacy_docker_config() {
        let legacy = br#"{"architecture":"amd64","config":{"Hostname":"","Domainname":"",
            "User":"","AttachStdin":false,"Env":["PATH=/bin"],"Cmd":null,"Image":"",
            "Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null},
            "container":"abc","container_config":{"Cmd":["/bin/sh"]},
            "created":"2019-01-01T10:00:00.5+02:00","docker_version":"18.09.7",
            "history":[{"created":"2019-01-01T10:00:00Z","created_by":"ADD file"}],
            "os":"linux","rootfs":{"type":"layers","diff_ids":null}}"#;
        let config = ImageConfig::from_json(legacy).unwrap();
        assert_eq!(config.config.env, ["PATH=/bin"]);
        assert!(config.config.cmd.is_empty());
        assert!(config.rootfs.diff_ids.is_empty());
        assert_eq!(config.history.len(), 1);
        let json = String::from_utf8(config.to_json().unwrap()).unwrap();
        assert!(json.contains(r#""config":{"Env":["PATH=/bin"]}"#), "{json}");
        assert!(!json.contains("container"));
    }

    #[test]
    fn rejects_garbage() {
        let err = ImageConfig::from_json(b"[1,2]").unwrap_err().to_string();
        assert!(err.starts_with("invalid image config"), "{err}");
    }

    #[test]
    fn timestamps() {
        assert_eq!(format_timestamp(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_timestamp(1_704_164_645, 500_000_000),
            "2024-01-02T03:04:05.5Z"
        );
        assert_eq!(format_timestamp(-1, 0), "1969-12-31T23:59:59Z");
        assert_eq!(format_timestamp(951_782_400, 0), "2000-02-29T00:00:00Z");
        assert_eq!(
            parse_timestamp("2024-01-02T03:04:05.5Z").unwrap(),
            (1_704_164_645, 500_000_000)
        );
        assert_eq!(
            parse_timestamp("2024-01-02T05:04:05+02:00").unwrap(),
            (1_704_164_645, 0)
        );
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z").unwrap(), (0, 0));
        for secs in [0i64, 86_399, 1_000_000_000, 4_102_444_800, -86_401] {
            let text = format_timestamp(secs, 7);
            assert_eq!(parse_timestamp(&text).unwrap(), (secs, 7), "{text}");
        }
        assert!(parse_timestamp("yesterday").is_err());
        assert!(parse_timestamp("2024-13-02T03:04:05Z").is_err());
    }

    #[test]
    fn clamps_timestamps() {
        let mut config = sample();
        config.clamp_timestamps(1_000).unwrap();
        assert_eq!(config.created.as_deref(), Some("1970-01-01T00:16:40Z"));
        assert!(config
            .history
            .iter()
            .all(|h| h.created.as_deref() == Some("1970-01-01T00:16:40Z")));
        let mut config = sample();
        config.clamp_timestamps(4_000_000_000).unwrap();
        assert_eq!(
            config.created.as_deref(),
            Some("2024-01-02T03:04:05.123456789Z")
        );
    }
}
