//! `RUN --mount=…`: the CSV option list parsed into a typed [`Mount`]
//! (BuildKit's `commands_runmount.go`).
//!
//! BuildKit reads a mount twice. When the instruction is parsed it only looks at `from=`
//! (to reject `$VAR` there and to know the stage dependencies); everything else may contain
//! variables, so the full parse happens at dispatch, after each value is expanded with the
//! stage's ARG/ENV. [`MountSpec`] is the first reading, [`parse_mount`] with an expander is
//! the second.

use super::csv;
use super::go_format::{go_quote, parse_go_bool, parse_go_uint};
use super::suggest;

/// Kind of a RUN mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MountType {
    /// A directory of another stage, image or the context (the default).
    #[default]
    Bind,
    /// A persistent cache directory.
    Cache,
    /// An in-memory filesystem.
    Tmpfs,
    /// A secret file (or environment variable).
    Secret,
    /// An SSH agent socket.
    Ssh,
}

impl MountType {
    const ALL: [MountType; 5] = [
        MountType::Bind,
        MountType::Cache,
        MountType::Tmpfs,
        MountType::Secret,
        MountType::Ssh,
    ];

    /// The name used in `type=`.
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

impl std::fmt::Display for MountType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareMode {
    /// Several writers at once (the default).
    Shared,
    /// Each writer gets its own copy.
    Private,
    /// One writer at a time.
    Locked,
}

impl ShareMode {
    const ALL: [ShareMode; 3] = [ShareMode::Shared, ShareMode::Private, ShareMode::Locked];

    /// The name used in `sharing=`.
    pub fn as_str(self) -> &'static str {
        match self {
            ShareMode::Shared => "shared",
            ShareMode::Private => "private",
            ShareMode::Locked => "locked",
        }
    }
}

/// One fully parsed `--mount`. String fields use `""` for "not given", as BuildKit does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mount {
    /// `type=`.
    pub kind: MountType,
    /// `from=`: stage name, stage index or image to mount from.
    pub from: String,
    /// `source=` / `src=`: path inside `from` (or secret id for secrets).
    pub source: String,
    /// `target=` / `dst=` / `destination=`.
    pub target: String,
    /// `ro`/`readonly`/`rw`/`readwrite`, or the type's default (cache and tmpfs writable,
    /// others read-only).
    pub read_only: bool,
    /// `size=` of a tmpfs, in bytes (0 = unlimited).
    pub size_limit: i64,
    /// `id=`: cache id, secret id or ssh id.
    pub id: String,
    /// `sharing=` of a cache.
    pub sharing: Option<ShareMode>,
    /// `required` for secret and ssh mounts.
    pub required: bool,
    /// `env=`: expose a secret as this environment variable.
    pub env: Option<String>,
    /// `mode=` (octal).
    pub mode: Option<u32>,
    /// `uid=`.
    pub uid: Option<u32>,
    /// `gid=`.
    pub gid: Option<u32>,
}

/// A `--mount` value as found at parse time: the raw text and its `from=` (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// The flag value, unexpanded.
    pub raw: String,
    /// The `from=` value ("" when absent), used to find stage dependencies.
    pub from: String,
    /// The full parse, once expanded by [`super::resolve`].
    pub resolved: Option<Mount>,
}

impl MountSpec {
    /// First reading of a mount, as BuildKit does when parsing the instruction.
    pub fn parse(raw: &str) -> Result<MountSpec, MountError> {
        let partial = parse_mount(raw, None)?;
        Ok(MountSpec {
            raw: raw.to_string(),
            from: partial.from,
            resolved: None,
        })
    }

    /// Full parse, each value first passed through `expand`.
    pub fn resolve(
        &self,
        expand: &mut dyn FnMut(&str) -> Result<String, String>,
    ) -> Result<Mount, MountError> {
        parse_mount(&self.raw, Some(expand))
    }
}

/// A bad `--mount`. Texts are BuildKit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    /// Not a CSV record.
    #[error("failed to parse csv mounts: {message}")]
    Csv {
        /// The CSV reader's message.
        message: String,
    },
    /// A field without `=` that is not a flag-like key.
    #[error("invalid field '{field}' must be a key=value pair")]
    NotKeyValue {
        /// The field.
        field: String,
    },
    /// A key that the mount's type does not take.
    #[error("unexpected key '{key}' for mount type '{kind}'")]
    KeyNotForType {
        /// The key.
        key: String,
        /// The mount type so far.
        kind: MountType,
    },
    /// A value that does not parse for its key.
    #[error("invalid value for {key}: {value}")]
    InvalidValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// `mode=`, `uid=`, `gid=` that are not numbers.
    #[error("invalid value {value} for {key}")]
    InvalidNumber {
        /// The key.
        key: &'static str,
        /// The value.
        value: String,
    },
    /// `type=` naming no mount type.
    #[error(
        "unsupported mount type {}{}",
        go_quote(value),
        suggest::suffix(suggestion)
    )]
    UnsupportedType {
        /// The value.
        value: String,
        /// Closest type.
        suggestion: Option<String>,
    },
    /// `sharing=` naming no share mode.
    #[error(
        "unsupported sharing value {}{}",
        go_quote(value),
        suggest::suffix(suggestion)
    )]
    UnsupportedSharing {
        /// The value.
        value: String,
        /// Closest mode.
        suggestion: Option<String>,
    },
    /// An unknown key.
    #[error("unexpected key '{key}' in '{field}'{}", suggest::suffix(suggestion))]
    UnexpectedKey {
        /// The key, lower case.
        key: String,
        /// The whole field.
        field: String,
        /// Closest key.
        suggestion: Option<String>,
    },
    /// mode/uid/gid on a bind or tmpfs mount.
    #[error("{key} not allowed for {} type mounts", go_quote(kind.as_str()))]
    FileInfoNotAllowed {
        /// `mode`, `uid` or `gid`.
        key: &'static str,
        /// The mount type.
        kind: MountType,
    },
    /// `from=` on a secret.
    #[error("secret mount should not have a from")]
    SecretFrom,
    /// `sharing=` on a secret.
    #[error("secret mount should not define sharing")]
    SecretSharing,
    /// A secret with none of source, target, id.
    #[error("invalid secret mount. one of source, target required")]
    SecretWithoutTarget,
    /// A secret with both source and id.
    #[error("both source and id can't be set")]
    SecretSourceAndId,
    /// `sharing=` on something other than a cache.
    #[error("invalid cache sharing set for {kind} mount")]
    SharingNotCache {
        /// The mount type.
        kind: MountType,
    },
    /// `from=$VAR`.
    #[error("'{key}' doesn't support variable expansion, define alias stage instead")]
    FromVariable {
        /// `from`.
        key: String,
    },
    /// A secret mount whose id cannot be derived (dispatch-time check).
    #[error("one of source, target required")]
    SecretIdUnknown,
    /// `source=` on an ssh mount (dispatch-time check).
    #[error("ssh does not support source")]
    SshSource,
    /// A value whose expansion failed.
    #[error("{message}")]
    Expansion {
        /// The expander's message.
        message: String,
    },
}

/// Expands one option value with the stage's variables; errors are the expander's text.
pub type ValueExpander<'a> = &'a mut dyn FnMut(&str) -> Result<String, String>;

const ALL_KEYS: [&str; 19] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

/// Parses a `--mount` value like BuildKit's `parseMount`.
///
/// Without an expander only `from=` is read (and checked for `$VAR`); with one, every value
/// is expanded and the whole mount is parsed and validated.
pub fn parse_mount(value: &str, mut expand: Option<ValueExpander>) -> Result<Mount, MountError> {
    let fields = csv::fields(value).map_err(|message| MountError::Csv { message })?;
    let mut m = Mount::default();
    let mut ro_auto = true;

    for field in fields {
        let (key, raw_value, has_value) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), v.to_string(), true),
            None => (field.to_lowercase(), String::new(), false),
        };

        if !has_value {
            if expand.is_none() {
                continue; // evaluated later
            }
            match key.as_str() {
                "readonly" | "ro" => {
                    m.read_only = true;
                    ro_auto = false;
                    continue;
                }
                "readwrite" | "rw" => {
                    m.read_only = false;
                    ro_auto = false;
                    continue;
                }
                "required" => {
                    if matches!(m.kind, MountType::Secret | MountType::Ssh) {
                        m.required = true;
                        continue;
                    }
                    return Err(MountError::KeyNotForType { key, kind: m.kind });
                }
                _ => return Err(MountError::NotKeyValue { field }),
            }
        }

        let value = match expand.as_mut() {
            Some(expand) => {
                expand(&raw_value).map_err(|message| MountError::Expansion { message })?
            }
            None if key == "from" => {
                // A `$` anywhere but at the very end would be expanded: not allowed.
                if let Some(i) = raw_value.find('$') {
                    if i != raw_value.len() - 1 {
                        return Err(MountError::FromVariable { key });
                    }
                }
                raw_value
            }
            None => continue, // evaluated later
        };

        match key.as_str() {
            "type" => {
                let lower = value.to_lowercase();
                let Some(kind) = MountType::ALL.into_iter().find(|t| t.as_str() == lower) else {
                    let suggestion =
                        suggest::closest(&value, MountType::ALL.iter().map(|t| t.as_str()), true);
                    return Err(MountError::UnsupportedType { value, suggestion });
                };
                m.kind = kind;
            }
            "from" => m.from = value,
            "source" | "src" => m.source = value,
            "target" | "dst" | "destination" => m.target = value,
            "readonly" | "ro" => {
                m.read_only = parse_go_bool(&value).ok_or_else(|| MountError::InvalidValue {
                    key: key.clone(),
                    value: value.clone(),
                })?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                let rw = parse_go_bool(&value).ok_or_else(|| MountError::InvalidValue {
                    key: key.clone(),
                    value: value.clone(),
                })?;
                m.read_only = !rw;
                ro_auto = false;
            }
            "required" => {
                if !matches!(m.kind, MountType::Secret | MountType::Ssh) {
                    return Err(MountError::KeyNotForType { key, kind: m.kind });
                }
                m.required =
                    parse_go_bool(&value).ok_or(MountError::InvalidValue { key, value })?;
            }
            "size" => {
                if m.kind != MountType::Tmpfs {
                    return Err(MountError::KeyNotForType { key, kind: m.kind });
                }
                m.size_limit =
                    ram_in_bytes(&value).ok_or(MountError::InvalidValue { key, value })?;
            }
            "id" => m.id = value,
            "sharing" => {
                let lower = value.to_lowercase();
                let Some(mode) = ShareMode::ALL.into_iter().find(|s| s.as_str() == lower) else {
                    let suggestion =
                        suggest::closest(&value, ShareMode::ALL.iter().map(|s| s.as_str()), true);
                    return Err(MountError::UnsupportedSharing { value, suggestion });
                };
                m.sharing = Some(mode);
            }
            "mode" => {
                m.mode = Some(number(&value, 8, "mode")?);
            }
            "uid" => {
                m.uid = Some(number(&value, 10, "uid")?);
            }
            "gid" => {
                m.gid = Some(number(&value, 10, "gid")?);
            }
            "env" => m.env = Some(value),
            _ => {
                let suggestion = suggest::closest(&key, ALL_KEYS, true);
                return Err(MountError::UnexpectedKey {
                    key,
                    field,
                    suggestion,
                });
            }
        }
    }

    let file_info_allowed = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info_allowed {
        for (key, set) in [
            ("mode", m.mode.is_some()),
            ("uid", m.uid.is_some()),
            ("gid", m.gid.is_some()),
        ] {
            if set {
                return Err(MountError::FileInfoNotAllowed { key, kind: m.kind });
            }
        }
    }

    if ro_auto {
        m.read_only = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }

    if m.kind == MountType::Secret {
        if !m.from.is_empty() {
            return Err(MountError::SecretFrom);
        }
        if m.sharing.is_some() {
            return Err(MountError::SecretSharing);
        }
        if m.source.is_empty() && m.target.is_empty() && m.id.is_empty() {
            return Err(MountError::SecretWithoutTarget);
        }
        if !m.source.is_empty() && !m.id.is_empty() {
            return Err(MountError::SecretSourceAndId);
        }
    }

    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(MountError::SharingNotCache { kind: m.kind });
    }

    Ok(m)
}

fn number(value: &str, base: u32, key: &'static str) -> Result<u32, MountError> {
    parse_go_uint(value, base, 32)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| MountError::InvalidNumber {
            key,
            value: value.to_string(),
        })
}

/// docker/go-units `RAMInBytes`: `512`, `64m`, `1.5GiB`, `10 kb` (binary multiples,
/// case-insensitive, optional `b`/`ib`).
pub fn ram_in_bytes(size: &str) -> Option<i64> {
    let (num, suffix) = match size.split_once(' ') {
        Some((n, s)) => (n, s),
        None => {
            let sep = size.rfind(|c: char| c.is_ascii_digit() || c == '.')?;
            (&size[..=sep], &size[sep + 1..])
        }
    };
    let value = parse_go_float(num)?;
    if value < 0.0 {
        return None;
    }
    if suffix.is_empty() {
        return Some(value as i64);
    }
    if suffix.len() > 3 {
        return None;
    }
    let suffix = suffix.to_lowercase();
    let mut chars = suffix.chars();
    let first = chars.next()?;
    if first == 'b' {
        return (suffix.len() == 1).then_some(value as i64);
    }
    let multiplier: f64 = match first {
        'k' => 1024.0,
        'm' => 1024.0 * 1024.0,
        'g' => 1024.0 * 1024.0 * 1024.0,
        't' => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        'p' => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let rest: String = chars.collect();
    if !(rest.is_empty() || rest == "b" || rest == "ib") {
        return None;
    }
    Some((value * multiplier) as i64)
}

/// Go `strconv.ParseFloat` for the decimal forms go-units can meet.
fn parse_go_float(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    // Rust also accepts `inf`/`nan` words; Go does too, but they cannot reach here
    // without a digit, except inside hex/underscore forms that Go rejects as well.
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    s.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(value: &str) -> Result<Mount, MountError> {
        let mut identity = |s: &str| Ok::<String, String>(s.to_string());
        parse_mount(value, Some(&mut identity))
    }

    #[test]
    fn defaults_and_kinds() {
        let m = full("target=/x").unwrap();
        assert_eq!(m.kind, MountType::Bind);
        assert!(m.read_only);
        let m = full("type=cache,target=/root/.cache,id=gomod,sharing=locked,mode=0755,uid=1000")
            .unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert!(!m.read_only);
        assert_eq!(m.sharing, Some(ShareMode::Locked));
        assert_eq!(m.mode, Some(0o755));
        assert_eq!(m.uid, Some(1000));
        let m = full("type=tmpfs,dst=/t,size=64m").unwrap();
        assert_eq!(m.size_limit, 64 * 1024 * 1024);
        let m = full("type=secret,id=tok,required,env=TOKEN").unwrap();
        assert!(m.required);
        assert_eq!(m.env.as_deref(), Some("TOKEN"));
        let m = full("type=bind,from=build,source=/out,destination=/in,rw").unwrap();
        assert!(!m.read_only);
        assert_eq!(
            (m.from.as_str(), m.source.as_str(), m.target.as_str()),
            ("build", "/out", "/in")
        );
        let m = full("type=ssh,required=true,ro=false").unwrap();
        assert!(m.required && !m.read_only);
        let m = full("Type=CACHE,target=/c").unwrap();
        assert_eq!(m.kind, MountType::Cache);
    }

    #[test]
    fn errors_match_buildkit() {
        let cases = [
            (
                "typ=tmpfs",
                "unexpected key 'typ' in 'typ=tmpfs' (did you mean type?)",
            ),
            (
                "type=tmp",
                "unsupported mount type \"tmp\" (did you mean tmpfs?)",
            ),
            (
                "type=cache,sharing=lock",
                "unsupported sharing value \"lock\" (did you mean locked?)",
            ),
            (
                "target=/x,mode=0644",
                "mode not allowed for \"bind\" type mounts",
            ),
            (
                "type=tmpfs,uid=1",
                "uid not allowed for \"tmpfs\" type mounts",
            ),
            ("type=cache,mode=9", "invalid value 9 for mode"),
            ("type=cache,uid=x", "invalid value x for uid"),
            (
                "required",
                "unexpected key 'required' for mount type 'bind'",
            ),
            (
                "type=bind,size=1",
                "unexpected key 'size' for mount type 'bind'",
            ),
            ("type=tmpfs,size=1q", "invalid value for size: 1q"),
            ("ro=maybe", "invalid value for ro: maybe"),
            ("foo", "invalid field 'foo' must be a key=value pair"),
            (
                "type=secret",
                "invalid secret mount. one of source, target required",
            ),
            (
                "type=secret,from=x,id=a",
                "secret mount should not have a from",
            ),
            (
                "type=secret,id=a,sharing=shared",
                "secret mount should not define sharing",
            ),
            ("type=secret,id=a,src=b", "both source and id can't be set"),
            (
                "type=bind,sharing=shared",
                "invalid cache sharing set for bind mount",
            ),
            ("", "failed to parse csv mounts: EOF"),
        ];
        for (value, want) in cases {
            assert_eq!(full(value).unwrap_err().to_string(), want, "{value}");
        }
    }

    #[test]
    fn parse_time_reading_only_checks_from() {
        let spec = MountSpec::parse("type=cache,from=build,target=$T").unwrap();
        assert_eq!(spec.from, "build");
        // Unknown keys and bad types are only caught once expanded.
        assert!(MountSpec::parse("typ=tmpfs").is_ok());
        assert!(MountSpec::parse("from=stage$").is_ok());
        assert_eq!(
            MountSpec::parse("from=$ttt,type=cache")
                .unwrap_err()
                .to_string(),
            "'from' doesn't support variable expansion, define alias stage instead"
        );
    }

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(ram_in_bytes("32"), Some(32));
        assert_eq!(ram_in_bytes("32b"), Some(32));
        assert_eq!(ram_in_bytes("32k"), Some(32 * 1024));
        assert_eq!(ram_in_bytes("32KiB"), Some(32 * 1024));
        assert_eq!(ram_in_bytes("1.5m"), Some(1_572_864));
        assert_eq!(ram_in_bytes("10 MB"), Some(10 * 1024 * 1024));
        assert_eq!(ram_in_bytes("32bb"), None);
        assert_eq!(ram_in_bytes("m"), None);
        assert_eq!(ram_in_bytes("-1"), None);
        assert_eq!(ram_in_bytes("1x"), None);
    }
}
