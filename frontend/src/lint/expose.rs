//! EXPOSE: ExposeProtoCasing and ExposeInvalidFormat, checked while the port specs are parsed
//! as BuildKit's `parsePort` does (`[ip:][hostPort:]containerPort[/proto]`), with its errors.

use super::config::CheckConfig;
use super::linter::Linter;
use super::rules;
use crate::instructions::port_range;
use crate::parser::{go_quote, Span};
use std::net::IpAddr;

/// Checks one port spec as written (after ARG expansion); an invalid one is an error.
pub(crate) fn check_port(
    raw: &str,
    span: Span,
    config: &CheckConfig,
    linter: &mut Linter,
) -> Result<(), String> {
    let (ip, host_port, container) = split_parts(raw);
    let (proto, container) =
        split_proto_port(container).map_err(|e| format!("invalid port: {}: {e}", go_quote(raw)))?;
    if proto != proto.to_lowercase() {
        linter.run(
            config,
            &rules::EXPOSE_PROTO_CASING,
            span,
            format!("Defined protocol '{raw}' in EXPOSE instruction should be lowercase"),
        );
    }
    if !ip.is_empty() || !host_port.is_empty() {
        linter.run(
            config,
            &rules::EXPOSE_INVALID_FORMAT,
            span,
            format!(
                "EXPOSE instruction should not define an IP address or host-port mapping, found '{raw}'"
            ),
        );
    }

    let ip = match ip.strip_prefix('[') {
        Some(rest) => rest
            .strip_suffix(']')
            .filter(|inner| !inner.contains(['[', ']']))
            .ok_or_else(|| format!("invalid IP address {ip}"))?,
        None => ip,
    };
    if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    let (start, end) =
        port_range(container).ok_or_else(|| format!("invalid containerPort: {container}"))?;
    if !host_port.is_empty() {
        let (host_start, host_end) =
            port_range(host_port).ok_or_else(|| format!("invalid hostPort: {host_port}"))?;
        if end - start != host_end - host_start && end != start {
            return Err(format!(
                "invalid ranges specified for container and host Ports: {container} and {host_port}"
            ));
        }
    }
    Ok(())
}

/// `ip:host:container`, the IP possibly holding further colons.
fn split_parts(raw: &str) -> (&str, &str, &str) {
    let parts: Vec<&str> = raw.split(':').collect();
    match parts.as_slice() {
        [container] => ("", "", container),
        [host, container] => ("", host, container),
        [ip, host, container] => (ip, host, container),
        [.., host, container] => {
            let ip_len = raw.len() - host.len() - container.len() - 2;
            (&raw[..ip_len], host, container)
        }
        [] => ("", "", ""),
    }
}

/// `port[/proto]` → (proto as written, `tcp` when absent; port).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_for(raw: &str) -> (Vec<&'static str>, Result<(), String>) {
        let mut linter = Linter::default();
        let r = check_port(raw, Span::default(), &CheckConfig::default(), &mut linter);
        (linter.warnings.iter().map(|w| w.rule).collect(), r)
    }

    #[test]
    fn warnings() {
        assert_eq!(rules_for("80/TcP").0, ["ExposeProtoCasing"]);
        assert_eq!(rules_for("8080/udp").0, Vec::<&str>::new());
        assert_eq!(rules_for("127.0.0.1:80:80").0, ["ExposeInvalidFormat"]);
        assert_eq!(rules_for("[::1]:8080:8080").0, ["ExposeInvalidFormat"]);
        assert_eq!(rules_for("::1:8080:8080").0, ["ExposeInvalidFormat"]);
        assert_eq!(rules_for("5000:5000").0, ["ExposeInvalidFormat"]);
        assert!(rules_for("8000-8010").1.is_ok());
    }

    #[test]
    fn errors() {
        assert_eq!(
            rules_for("80/xyz").1.unwrap_err(),
            r#"invalid port: "80/xyz": invalid proto: xyz"#
        );
        assert_eq!(
            rules_for("/tcp").1.unwrap_err(),
            r#"invalid port: "/tcp": no port specified"#
        );
        assert_eq!(
            rules_for("99999").1.unwrap_err(),
            "invalid containerPort: 99999"
        );
        assert_eq!(
            rules_for("1.2.3:80:80").1.unwrap_err(),
            "invalid IP address: 1.2.3"
        );
        assert_eq!(
            rules_for("1-3:5-6").1.unwrap_err(),
            "invalid ranges specified for container and host Ports: 5-6 and 1-3"
        );
        assert!(rules_for("1-3:5").1.is_ok());
    }
}
