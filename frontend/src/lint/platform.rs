//! Platform specifiers (`linux/amd64`, `linux/arm/v7`) as containerd's `platforms` package
//! parses and formats them: the values of the built-in `BUILDPLATFORM`/`TARGETPLATFORM` args,
//! and the `FROM --platform` checks.

use crate::parser::go_quote;

/// An OS/architecture pair with optional variant and OS version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Platform {
    /// `linux`, `windows`, …
    pub os: String,
    /// Go's architecture name: `amd64`, `arm64`, …
    pub architecture: String,
    /// `v7`, `v8`, … or empty.
    pub variant: String,
    /// Windows OS version, usually empty.
    pub os_version: String,
}

const SPECIFIER_PATTERN: &str = "^[A-Za-z0-9_.-]+$";
const OS_PATTERN: &str = r"^([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)((?:\+[A-Za-z0-9_.%-]+)*)\))?$";

impl Platform {
    /// The platform this process runs on, named as Go names it (what BuildKit uses when no
    /// `--platform` is given).
    pub fn host() -> Self {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", ""),
            "x86" => ("386", ""),
            "aarch64" => ("arm64", "v8"),
            "arm" => ("arm", "v7"),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", ""),
            "powerpc64" => ("ppc64", ""),
            "loongarch64" => ("loong64", ""),
            other => (other, ""),
        };
        Self {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: variant.to_string(),
            os_version: String::new(),
        }
    }

    /// `os/arch[/variant]` (containerd's `Format`).
    pub fn format(&self) -> String {
        if self.os.is_empty() {
            return "unknown".to_string();
        }
        join(&[&self.os, &self.architecture, &self.variant])
    }

    /// Like [`Platform::format`], with the OS version in parentheses (`FormatAll`).
    pub fn format_all(&self) -> String {
        if self.os.is_empty() {
            return "unknown".to_string();
        }
        if self.os_version.is_empty() {
            return self.format();
        }
        let os = format!("{}({})", self.os, self.os_version);
        join(&[&os, &self.architecture, &self.variant])
    }

    /// Parses a specifier as containerd's `platforms.Parse`; the error text is its message.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let invalid = "invalid argument";
        if spec.contains('*') {
            return Err(format!(
                "{}: wildcards not yet supported: {invalid}",
                go_quote(spec)
            ));
        }
        let parts: Vec<&str> = spec.splitn(4, '/').collect();
        let mut p = Self::default();
        for (i, part) in parts.iter().enumerate() {
            if i == 0 {
                let Some((os, version)) = split_os(part) else {
                    return Err(format!(
                        "{} is an invalid OS component of {}: OSAndVersion specifier component must match {}: {invalid}",
                        go_quote(part),
                        go_quote(spec),
                        go_quote(OS_PATTERN)
                    ));
                };
                p.os = normalize_os(os);
                p.os_version = version.to_string();
            } else if part.is_empty() || !part.chars().all(is_specifier_char) {
                return Err(format!(
                    "{} is an invalid component of {}: platform specifier component must match {}: {invalid}",
                    go_quote(part),
                    go_quote(spec),
                    go_quote(SPECIFIER_PATTERN)
                ));
            }
        }
        match parts.as_slice() {
            [only] => {
                if is_known_os(&p.os) {
                    let host = Self::host();
                    p.architecture = host.architecture;
                    if p.architecture == "arm" && host.variant != "v7" {
                        p.variant = host.variant;
                    }
                    return Ok(p);
                }
                let (arch, variant) = normalize_arch(only, "");
                p.variant = if arch == "arm" && variant == "v7" {
                    String::new()
                } else {
                    variant
                };
                p.architecture = arch;
                if is_known_arch(&p.architecture) {
                    p.os = std::env::consts::OS.to_string();
                    return Ok(p);
                }
                Err(format!(
                    "{}: unknown operating system or architecture: {invalid}",
                    go_quote(spec)
                ))
            }
            [_, arch] => {
                let (arch, variant) = normalize_arch(arch, "");
                p.variant = if arch == "arm" && variant == "v7" {
                    String::new()
                } else {
                    variant
                };
                p.architecture = arch;
                Ok(p)
            }
            [_, arch, variant] => {
                let (arch, variant) = normalize_arch(arch, variant);
                p.variant = if arch == "arm64" && variant.is_empty() {
                    "v8".to_string()
                } else {
                    variant
                };
                p.architecture = arch;
                Ok(p)
            }
            _ => Err(format!(
                "{}: cannot parse platform specifier: {invalid}",
                go_quote(spec)
            )),
        }
    }
}

/// Go's `path.Join` for these simple components: empty ones are left out.
fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/")
}

fn is_specifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// `<os>[(<version>[+<feature>]*)]` → (os, version).
fn split_os(part: &str) -> Option<(&str, &str)> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-');
    let is_option = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '%' | '-');
    let (os, options) = match part.split_once('(') {
        Some((os, rest)) => (os, Some(rest.strip_suffix(')')?)),
        None => (part, None),
    };
    if os.is_empty() || !os.chars().all(is_name) {
        return None;
    }
    let Some(options) = options else {
        return Some((os, ""));
    };
    let mut pieces = options.split('+');
    let version = pieces.next().unwrap_or_default();
    let features_ok = pieces.all(|f| !f.is_empty() && f.chars().all(is_option));
    (version.chars().all(is_option) && features_ok).then_some((os, version))
}

fn normalize_os(os: &str) -> String {
    if os.is_empty() {
        return std::env::consts::OS.to_string();
    }
    match os.to_lowercase().as_str() {
        "macos" => "darwin".to_string(),
        other => other.to_string(),
    }
}

fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_lowercase();
    let variant = variant.to_lowercase();
    let (a, v): (&str, String) = match arch.as_str() {
        "i386" => ("386", String::new()),
        "x86_64" | "x86-64" | "amd64" => (
            "amd64",
            if variant == "v1" {
                String::new()
            } else {
                variant
            },
        ),
        "aarch64" | "arm64" => (
            "arm64",
            match variant.as_str() {
                "8" | "v8" | "v8.0" => String::new(),
                "9" | "9.0" | "v9.0" => "v9".to_string(),
                _ => variant,
            },
        ),
        "armhf" => ("arm", "v7".to_string()),
        "armel" => ("arm", "v6".to_string()),
        "arm" => (
            "arm",
            match variant.as_str() {
                "" | "7" => "v7".to_string(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            },
        ),
        other => return (other.to_string(), variant),
    };
    (a.to_string(), v)
}

fn is_known_os(os: &str) -> bool {
    matches!(
        os,
        "aix"
            | "android"
            | "darwin"
            | "dragonfly"
            | "freebsd"
            | "hurd"
            | "illumos"
            | "ios"
            | "js"
            | "linux"
            | "nacl"
            | "netbsd"
            | "openbsd"
            | "plan9"
            | "solaris"
            | "windows"
            | "zos"
    )
}

fn is_known_arch(arch: &str) -> bool {
    matches!(
        arch,
        "386"
            | "amd64"
            | "amd64p32"
            | "arm"
            | "armbe"
            | "arm64"
            | "arm64be"
            | "ppc64"
            | "ppc64le"
            | "loong64"
            | "mips"
            | "mipsle"
            | "mips64"
            | "mips64le"
            | "mips64p32"
            | "mips64p32le"
            | "ppc"
            | "riscv"
            | "riscv64"
            | "s390"
            | "s390x"
            | "sparc"
            | "sparc64"
            | "wasm"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let p = Platform::parse("linux/x86_64").unwrap();
        assert_eq!((p.os.as_str(), p.architecture.as_str()), ("linux", "amd64"));
        assert_eq!(
            Platform::parse("Linux/arm64/v8").unwrap().format(),
            "linux/arm64/v8"
        );
        assert_eq!(
            Platform::parse("linux/aarch64").unwrap().format(),
            "linux/arm64"
        );
        assert_eq!(
            Platform::parse("linux/armhf").unwrap().format(),
            "linux/arm"
        );
        assert_eq!(
            Platform::parse("linux/armel").unwrap().format(),
            "linux/arm/v6"
        );
        assert_eq!(Platform::parse("linux/arm").unwrap().format(), "linux/arm");
        let w = Platform::parse("windows(10.0.17763)/amd64").unwrap();
        assert_eq!(w.format_all(), "windows(10.0.17763)/amd64");
        assert_eq!(Platform::parse("amd64").unwrap().architecture, "amd64");
    }

    #[test]
    fn errors_match_containerd() {
        assert_eq!(
            Platform::parse("linux/").unwrap_err(),
            r#""" is an invalid component of "linux/": platform specifier component must match "^[A-Za-z0-9_.-]+$": invalid argument"#
        );
        assert_eq!(
            Platform::parse("foo").unwrap_err(),
            r#""foo": unknown operating system or architecture: invalid argument"#
        );
        assert!(Platform::parse("/amd64")
            .unwrap_err()
            .contains("is an invalid OS component"));
        assert!(Platform::parse("linux/*")
            .unwrap_err()
            .contains("wildcards"));
        assert!(Platform::parse("a/b/c/d")
            .unwrap_err()
            .contains("cannot parse platform specifier"));
    }

    #[test]
    fn host_is_formatted_like_go() {
        let h = Platform::host();
        assert!(!h.os.is_empty());
        assert!(!h.format().contains("x86_64"));
    }
}
