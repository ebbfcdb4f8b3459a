//! `RUN [--mount=…] [--network=…] [--security=…] [--device=…] command`.

use super::command_line::{self, CommandLine};
use super::csv;
use super::go_format::parse_go_bool;
use super::mount::MountSpec;
use super::suggest;
use super::{Error, Origin, Request};

/// `--network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// The builder's default network.
    #[default]
    Default,
    /// No network.
    None,
    /// The host's network (an entitlement).
    Host,
}

/// `--security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityMode {
    /// The normal sandbox.
    #[default]
    Sandbox,
    /// Privileged (an entitlement).
    Insecure,
}

/// `--device=name[,required]`: a CDI device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// CDI device name.
    pub name: String,
    /// Fail when the device is not available.
    pub required: bool,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInstruction {
    /// Source line.
    pub origin: Origin,
    /// The command, with heredoc bodies.
    pub command: CommandLine,
    /// `--mount` values; each is fully parsed once expanded (see [`MountSpec::resolve`]).
    pub mounts: Vec<MountSpec>,
    /// `--network`.
    pub network: NetworkMode,
    /// `--security`.
    pub security: SecurityMode,
    /// `--device` values.
    pub devices: Vec<Device>,
    /// Names of the flags given, in order of first use.
    pub flags_used: Vec<String>,
}

pub(super) fn parse(req: &mut Request) -> Result<RunInstruction, Error> {
    let span = req.span();
    // Declared in BuildKit's hook order (device, mount, network, security).
    let device = req.flags.add_strings("device");
    let mount = req.flags.add_strings("mount");
    let network = req.flags.add_string("network", "default");
    let security = req.flags.add_string("security", "sandbox");
    req.parse_flags()?;
    let flags_used = req.flags.used();
    let command = command_line::parse(req);

    let devices = req
        .flags
        .strings(device)
        .iter()
        .map(|value| parse_device(value).map_err(|message| Error::Device { message, span }))
        .collect::<Result<Vec<_>, _>>()?;
    let mounts = req
        .flags
        .strings(mount)
        .iter()
        .map(|value| MountSpec::parse(value).map_err(|error| Error::Mount { error, span }))
        .collect::<Result<Vec<_>, _>>()?;
    let network = match req.flags.string(network).as_str() {
        "default" => NetworkMode::Default,
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        other => {
            return Err(Error::NetworkMode {
                value: other.to_string(),
                span,
            })
        }
    };
    let security = match req.flags.string(security).as_str() {
        "sandbox" => SecurityMode::Sandbox,
        "insecure" => SecurityMode::Insecure,
        other => {
            return Err(Error::SecurityMode {
                value: other.to_string(),
                span,
            })
        }
    };
    Ok(RunInstruction {
        origin: req.origin(),
        command,
        mounts,
        network,
        security,
        devices,
        flags_used,
    })
}

/// BuildKit's `ParseDevice`: `name`, `name=…`, `required[=bool]`.
fn parse_device(value: &str) -> Result<Device, String> {
    let fields = csv::fields(value).map_err(|e| format!("failed to parse csv devices: {e}"))?;
    let mut device = Device {
        name: String::new(),
        required: false,
    };
    for field in fields {
        let Some((key, v)) = field.split_once('=') else {
            if field.eq_ignore_ascii_case("required") {
                device.required = true;
            } else if device.name.is_empty() {
                device.name = field;
            } else {
                return Err(format!("invalid field '{field}' must be a key=value pair"));
            }
            continue;
        };
        match key.to_lowercase().as_str() {
            "name" => {
                if !device.name.is_empty() {
                    return Err(format!("device name already set to {}", device.name));
                }
                device.name = v.to_string();
            }
            "required" => {
                device.required =
                    parse_go_bool(v).ok_or_else(|| format!("invalid value for required: {v}"))?;
            }
            other => {
                if device.name.is_empty() {
                    // A CDI name may itself contain `=`.
                    device.name = field.clone();
                    continue;
                }
                let suggestion = suggest::closest(other, ["name", "required"], true);
                return Err(format!(
                    "unexpected key '{other}' in '{field}'{}",
                    suggest::suffix(&suggestion)
                ));
            }
        }
    }
    Ok(device)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{heredoc, json_node, node};
    use super::super::{parse_instruction, Instruction};
    use super::*;

    fn run(n: crate::parser::Node) -> Result<RunInstruction, String> {
        match parse_instruction(&n) {
            Ok(Instruction::Run(r)) => Ok(r),
            Ok(_) => Err("not RUN".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn forms_and_flags() {
        let r = run(json_node("RUN", &["ls", "/"])).unwrap();
        assert_eq!(
            (r.command.args, r.command.prepend_shell),
            (vec!["ls".into(), "/".into()], false)
        );
        let r = run(node(
            "RUN",
            &["--mount=type=tmpfs,target=/foo/"],
            &["echo hello"],
        ))
        .unwrap();
        assert_eq!(r.flags_used, vec!["mount"]);
        assert_eq!(r.mounts[0].raw, "type=tmpfs,target=/foo/");
        let r = run(node(
            "RUN",
            &["--network=none", "--security=insecure"],
            &["x"],
        ))
        .unwrap();
        assert_eq!(
            (r.network, r.security),
            (NetworkMode::None, SecurityMode::Insecure)
        );
        let mut n = node("RUN", &[], &["<<-EOF"]);
        n.heredocs = vec![heredoc("EOF", "\techo test\n", true, true)];
        let r = run(n).unwrap();
        assert_eq!(r.command.args, vec!["<<-EOF"]);
        assert_eq!(r.command.files[0].data, "\techo test\n");
        assert!(r.command.files[0].chomp);
    }

    #[test]
    fn errors() {
        let err = |flags: &[&str]| run(node("RUN", flags, &["x"])).unwrap_err();
        assert_eq!(
            err(&["--mont=target=/x"]),
            "unknown flag: --mont (did you mean mount?)"
        );
        assert_eq!(
            err(&["--network=bridge"]),
            "invalid network mode \"bridge\""
        );
        assert_eq!(err(&["--security=x"]), "security \"x\" is not valid");
        assert_eq!(
            err(&["--mount=from=$x"]),
            "'from' doesn't support variable expansion, define alias stage instead"
        );
        assert_eq!(err(&["--network"]), "missing a value on flag: --network");
    }

    #[test]
    fn devices() {
        assert_eq!(
            parse_device("vendor.com/gpu=all").unwrap().name,
            "vendor.com/gpu=all"
        );
        let d = parse_device("name=gpu,required").unwrap();
        assert_eq!((d.name.as_str(), d.required), ("gpu", true));
        assert_eq!(
            parse_device("a,b").unwrap_err(),
            "invalid field 'b' must be a key=value pair"
        );
        assert_eq!(
            parse_device("a,nme=x").unwrap_err(),
            "unexpected key 'nme' in 'nme=x' (did you mean name?)"
        );
    }
}
