//! EXPOSE port specs → image-config `ExposedPorts` keys (`80/tcp`), as BuildKit's
//! `convert_expose.go` reads them.
//!
//! Accepted: `80`, `80/udp`, `8000-8010/tcp`, and the `[ip:]hostPort:containerPort[/proto]`
//! publish syntax (BuildKit tolerates it and keeps only the container side; its linter
//! warns). The protocol defaults to `tcp` and is lower-cased.

use super::go_format::go_quote;
use std::net::IpAddr;

/// A port spec that cannot be exposed. Texts are BuildKit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// No container port, or an unknown protocol.
    #[error("invalid port: {}: {reason}", go_quote(spec))]
    Invalid {
        /// The spec as given.
        spec: String,
        /// `no port specified` or `invalid proto: X`.
        reason: String,
    },
    /// A bracketed IPv6 address that is not well-formed.
    #[error("invalid IP address {ip}: {reason}")]
    BadBrackets {
        /// The address part.
        ip: String,
        /// Why.
        reason: String,
    },
    /// An address part that is not an IP address.
    #[error("invalid IP address: {ip}")]
    BadAddress {
        /// The address part.
        ip: String,
    },
    /// A container port (range) that is not numeric or out of range.
    #[error("invalid containerPort: {port}")]
    ContainerPort {
        /// The container part.
        port: String,
    },
    /// A host port (range) that is not numeric or out of range.
    #[error("invalid hostPort: {port}")]
    HostPort {
        /// The host part.
        port: String,
    },
    /// Container and host ranges of different sizes.
    #[error("invalid ranges specified for container and host Ports: {container} and {host}")]
    RangeMismatch {
        /// The container part.
        container: String,
        /// The host part.
        host: String,
    },
}

/// Parses several specs, concatenating their `port/proto` lists in order.
pub fn parse_ports<S: AsRef<str>>(specs: &[S]) -> Result<Vec<String>, PortError> {
    let mut out = Vec::new();
    for spec in specs {
        out.extend(parse_port(spec.as_ref())?);
    }
    Ok(out)
}

/// Parses one spec into its `port/proto` list (a range gives one entry per port).
pub fn parse_port(spec: &str) -> Result<Vec<String>, PortError> {
    let (ip, host_port, container) = split_parts(spec);
    let (proto, container) = split_proto_port(container).map_err(|reason| PortError::Invalid {
        spec: spec.to_string(),
        reason,
    })?;

    let mut ip = ip.to_string();
    if ip.starts_with('[') {
        ip = strip_brackets(&ip)?;
    }
    if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
        return Err(PortError::BadAddress { ip });
    }

    let (start, end) = port_range(container).ok_or_else(|| PortError::ContainerPort {
        port: container.to_string(),
    })?;
    if !host_port.is_empty() {
        let (host_start, host_end) = port_range(host_port).ok_or_else(|| PortError::HostPort {
            port: host_port.to_string(),
        })?;
        // A host range with a single container port is a pool to allocate from: allowed.
        if end - start != host_end - host_start && end != start {
            return Err(PortError::RangeMismatch {
                container: container.to_string(),
                host: host_port.to_string(),
            });
        }
    }
    let proto = proto.to_lowercase();
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// `ip:host:container` from the right: the last two colon-separated parts are the ports,
/// everything before them (colons included, for IPv6) is the address.
fn split_parts(spec: &str) -> (&str, &str, &str) {
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.len() {
        0 | 1 => ("", "", spec),
        2 => ("", parts[0], parts[1]),
        n => {
            let container_start = spec.len() - parts[n - 1].len();
            let host_start = container_start - 1 - parts[n - 2].len();
            let ip = if host_start == 0 {
                ""
            } else {
                &spec[..host_start - 1]
            };
            (ip, parts[n - 2], parts[n - 1])
        }
    }
}

fn split_proto_port(raw: &str) -> Result<(&str, &str), String> {
    let (port, proto) = raw.split_once('/').unwrap_or((raw, ""));
    if port.is_empty() {
        return Err("no port specified".to_string());
    }
    match proto.to_lowercase().as_str() {
        "" => Ok(("tcp", port)),
        "tcp" | "udp" | "sctp" => Ok((proto, port)),
        _ => Err(format!("invalid proto: {proto}")),
    }
}

fn strip_brackets(ip: &str) -> Result<String, PortError> {
    let bad = |reason: &str| PortError::BadBrackets {
        ip: ip.to_string(),
        reason: format!("address {ip}:: {reason}"),
    };
    let inner = ip.strip_prefix('[').unwrap_or(ip);
    let Some(end) = inner.find(']') else {
        return Err(bad("missing ']' in address"));
    };
    let (host, after) = (&inner[..end], &inner[end + 1..]);
    if !after.is_empty() {
        return Err(bad(if after.starts_with(':') {
            "too many colons in address"
        } else {
            "missing port in address"
        }));
    }
    if host.contains('[') {
        return Err(bad("unexpected '[' in address"));
    }
    Ok(host.to_string())
}

/// `8000` or `8000-8010` → inclusive bounds; `None` when invalid.
pub(crate) fn port_range(ports: &str) -> Option<(u32, u32)> {
    if ports.is_empty() {
        return None;
    }
    let (start, end) = match ports.split_once('-') {
        Some((s, e)) => (s, Some(e)),
        None => (ports, None),
    };
    let start_port = port_number(start)?;
    match end {
        None => Some((start_port, start_port)),
        Some(e) if e == start => Some((start_port, start_port)),
        Some(e) => {
            let end_port = port_number(e)?;
            (end_port >= start_port).then_some((start_port, end_port))
        }
    }
}

fn port_number(raw: &str) -> Option<u32> {
    let digits = raw.strip_prefix('+').unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Long digit strings overflow Go's int too: invalid either way.
    let value: u64 = digits.parse().ok()?;
    (value <= 65535).then_some(value as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_specs() {
        assert_eq!(parse_port("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(parse_port("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(
            parse_port("8000-8002/sctp").unwrap(),
            vec!["8000/sctp", "8001/sctp", "8002/sctp"]
        );
        assert_eq!(parse_port("127.0.0.1:80:80").unwrap(), vec!["80/tcp"]);
        assert_eq!(parse_port("8080-8090:80").unwrap(), vec!["80/tcp"]);
        assert_eq!(parse_port("[::1]:80:80").unwrap(), vec!["80/tcp"]);
    }

    #[test]
    fn invalid_specs() {
        let cases = [
            ("", "invalid port: \"\": no port specified"),
            ("80/xyz", "invalid port: \"80/xyz\": invalid proto: xyz"),
            ("abc", "invalid containerPort: abc"),
            ("70000", "invalid containerPort: 70000"),
            ("90-80", "invalid containerPort: 90-80"),
            ("x:80", "invalid hostPort: x"),
            ("localhost:80:80", "invalid IP address: localhost"),
            (
                "80-81:90-93",
                "invalid ranges specified for container and host Ports: 90-93 and 80-81",
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(parse_port(spec).unwrap_err().to_string(), want, "{spec}");
        }
        assert!(parse_port("[::1:80:80").is_err());
    }
}
