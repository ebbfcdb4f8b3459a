//! Platform specifiers (`linux/arm64/v8`, `windows(10.0.17763)/amd64`, `arm64`) as
//! containerd's `platforms.Parse` reads and normalises them, for `FROM --platform` and the
//! `BUILDPLATFORM`/`TARGETPLATFORM` build arguments.

use super::go_format::go_quote;

/// An OS/architecture pair with optional variant and OS version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Platform {
    /// `linux`, `windows`, …
    pub os: String,
    /// `amd64`, `arm64`, …
    pub architecture: String,
    /// `v7`, `v8`, …
    pub variant: String,
    /// Windows OS version.
    pub os_version: String,
}

impl Platform {
    /// The platform this process runs on (`linux/amd64` on an x86-64 Linux host).
    pub fn host() -> Platform {
        let (architecture, variant) = normalize_arch(host_arch(), "");
        Platform {
            os: host_os().to_string(),
            architecture,
            variant,
            os_version: String::new(),
        }
    }

    /// containerd's `Format`: `os/arch[/variant]`.
    pub fn format(&self) -> String {
        if self.os.is_empty() {
            return "unknown".to_string();
        }
        [self.os.as_str(), &self.architecture, &self.variant]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/")
    }

    /// containerd's `FormatAll`: like [`Platform::format`] with `(osversion)` after the OS.
    pub fn format_all(&self) -> String {
        if self.os_version.is_empty() {
            return self.format();
        }
        let os = format!("{}({})", self.os, self.os_version);
        [os.as_str(), &self.architecture, &self.variant]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/")
    }
}

fn host_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

const KNOWN_OS: [&str; 17] = [
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "windows",
    "zos",
];

const KNOWN_ARCH: [&str; 25] = [
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
    "riscv32",
];

fn invalid(spec: &str, what: &str) -> String {
    format!("{}: {what}: invalid argument", go_quote(spec))
}

/// Parses and normalises a platform specifier; errors are containerd's texts.
pub fn parse_platform(spec: &str) -> Result<Platform, String> {
    if spec.contains('*') {
        return Err(invalid(spec, "wildcards not yet supported"));
    }
    let parts: Vec<&str> = spec.splitn(4, '/').collect();
    let mut p = Platform::default();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let (os, version) = split_os(part).ok_or_else(|| {
                format!(
                    "{} is an invalid OS component of {}: OSAndVersion specifier component must match {}: invalid argument",
                    go_quote(part),
                    go_quote(spec),
                    go_quote(r"^([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)((?:\+[A-Za-z0-9_.%-]+)*)\))?$")
                )
            })?;
            p.os = if os.is_empty() {
                host_os().to_string()
            } else {
                normalize_os(os)
            };
            p.os_version = version.to_string();
        } else if part.is_empty()
            || !part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(format!(
                "{} is an invalid component of {}: platform specifier component must match {}: invalid argument",
                go_quote(part),
                go_quote(spec),
                go_quote("^[A-Za-z0-9_.-]+$")
            ));
        }
    }
    match parts.as_slice() {
        [single] => {
            if KNOWN_OS.contains(&p.os.as_str()) {
                let (arch, variant) = normalize_arch(host_arch(), "");
                p.architecture = arch;
                p.variant = variant;
                return Ok(p);
            }
            let (arch, mut variant) = normalize_arch(single, "");
            if arch == "arm" && variant == "v7" {
                variant.clear();
            }
            if KNOWN_ARCH.contains(&arch.as_str()) {
                p.os = host_os().to_string();
                p.os_version.clear();
                p.architecture = arch;
                p.variant = variant;
                return Ok(p);
            }
            Err(invalid(spec, "unknown operating system or architecture"))
        }
        [_, arch] => {
            let (arch, mut variant) = normalize_arch(arch, "");
            if arch == "arm" && variant == "v7" {
                variant.clear();
            }
            p.architecture = arch;
            p.variant = variant;
            Ok(p)
        }
        [_, arch, variant] => {
            let (arch, mut variant) = normalize_arch(arch, variant);
            if arch == "arm64" && variant.is_empty() {
                variant = "v8".to_string();
            }
            p.architecture = arch;
            p.variant = variant;
            Ok(p)
        }
        _ => Err(invalid(spec, "cannot parse platform specifier")),
    }
}

/// `os[(version[+feature…])]`.
fn split_os(part: &str) -> Option<(&str, &str)> {
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    match part.split_once('(') {
        None => name_ok(part).then_some((part, "")),
        Some((os, rest)) => {
            let inner = rest.strip_suffix(')')?;
            let version = inner.split('+').next().unwrap_or("");
            let valid = |s: &str| {
                s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'%' | b'-'))
            };
            let features_ok = inner.split('+').skip(1).all(|f| !f.is_empty() && valid(f));
            (name_ok(os) && valid(version) && features_ok).then_some((os, version))
        }
    }
}

fn normalize_os(os: &str) -> String {
    let os = os.to_lowercase();
    if os == "macos" {
        "darwin".to_string()
    } else {
        os
    }
}

fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_lowercase();
    let variant = variant.to_lowercase();
    match arch.as_str() {
        "i386" => ("386".into(), String::new()),
        "x86_64" | "x86-64" | "amd64" => {
            let v = if variant == "v1" {
                String::new()
            } else {
                variant
            };
            ("amd64".into(), v)
        }
        "aarch64" | "arm64" => {
            let v = match variant.as_str() {
                "8" | "v8" | "v8.0" => String::new(),
                "9" | "9.0" | "v9.0" => "v9".into(),
                _ => variant,
            };
            ("arm64".into(), v)
        }
        "armhf" => ("arm".into(), "v7".into()),
        "armel" => ("arm".into(), "v6".into()),
        "arm" => {
            let v = match variant.as_str() {
                "" | "7" => "v7".into(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            };
            ("arm".into(), v)
        }
        _ => (arch, variant),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let p = parse_platform("linux/arm64/v8").unwrap();
        assert_eq!(
            (p.os.as_str(), p.architecture.as_str(), p.variant.as_str()),
            ("linux", "arm64", "v8")
        );
        assert_eq!(
            parse_platform("linux/x86_64").unwrap().format(),
            "linux/amd64"
        );
        assert_eq!(parse_platform("linux/arm").unwrap().format(), "linux/arm");
        assert_eq!(
            parse_platform("linux/arm/7").unwrap().format(),
            "linux/arm/v7"
        );
        assert_eq!(
            parse_platform("Linux/ARM64").unwrap().format(),
            "linux/arm64"
        );
        assert_eq!(
            parse_platform("windows(10.0.17763)/amd64")
                .unwrap()
                .format_all(),
            "windows(10.0.17763)/amd64"
        );
        assert_eq!(parse_platform("arm64").unwrap().architecture, "arm64");
        assert_eq!(parse_platform("linux").unwrap().os, "linux");
    }

    #[test]
    fn rejects() {
        assert_eq!(
            parse_platform("foo").unwrap_err(),
            "\"foo\": unknown operating system or architecture: invalid argument"
        );
        assert!(parse_platform("linux/*").is_err());
        assert!(parse_platform("linux//").is_err());
        assert!(parse_platform("a/b/c/d").is_err());
        assert!(parse_platform("").is_err());
        assert!(parse_platform("lin ux/amd64").is_err());
    }
}
