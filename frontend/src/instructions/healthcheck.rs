//! `HEALTHCHECK [--interval=…] CMD …` / `HEALTHCHECK NONE`.

use super::command_line::json_or_joined;
use super::flags::FlagId;
use super::go_format::{go_duration, go_string_slice, parse_go_duration, parse_go_int};
use super::{Error, Origin, Request};
use std::time::Duration;

/// The image-config health check (Docker's `HealthcheckConfig`). Zero durations and
/// retries mean "inherit the default".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", args…]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// `--interval`.
    pub interval: Duration,
    /// `--timeout`.
    pub timeout: Duration,
    /// `--start-period`.
    pub start_period: Duration,
    /// `--start-interval`.
    pub start_interval: Duration,
    /// `--retries`.
    pub retries: i64,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthcheckInstruction {
    /// Source line.
    pub origin: Origin,
    /// The check.
    pub health: HealthConfig,
}

/// The image history `created_by` text BuildKit records for a HEALTHCHECK (Go's `%+v` of the
/// config): `HEALTHCHECK {Test:[CMD-SHELL true] Interval:1s Timeout:0s StartPeriod:0s
/// StartInterval:0s Retries:0}`.
pub fn healthcheck_created_by(health: &HealthConfig) -> String {
    format!(
        "HEALTHCHECK {{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
        go_string_slice(&health.test),
        go_duration(health.interval),
        go_duration(health.timeout),
        go_duration(health.start_period),
        go_duration(health.start_interval),
        health.retries
    )
}

pub(super) fn parse(req: &mut Request) -> Result<HealthcheckInstruction, Error> {
    let span = req.span();
    let Some(first) = req.args.first() else {
        return Err(Error::AtLeastOneArgument {
            keyword: "HEALTHCHECK",
            span,
        });
    };
    let kind = first.to_uppercase();
    let rest = req.args[1..].to_vec();

    if kind == "NONE" {
        if !rest.is_empty() {
            return Err(Error::HealthcheckNoneArguments { span });
        }
        // BuildKit does not look at the flags of HEALTHCHECK NONE.
        return Ok(HealthcheckInstruction {
            origin: req.origin(),
            health: HealthConfig {
                test: vec![kind],
                ..HealthConfig::default()
            },
        });
    }

    let interval = req.flags.add_string("interval", "");
    let timeout = req.flags.add_string("timeout", "");
    let start_period = req.flags.add_string("start-period", "");
    let start_interval = req.flags.add_string("start-interval", "");
    let retries = req.flags.add_string("retries", "");
    req.parse_flags()?;

    if kind != "CMD" {
        return Err(Error::HealthcheckType { kind, span });
    }
    let command = json_or_joined(&rest, req.node.json);
    if command.is_empty() {
        return Err(Error::HealthcheckMissingCommand { span });
    }
    let test_kind = if req.node.json { "CMD" } else { "CMD-SHELL" };
    let mut test = vec![test_kind.to_string()];
    test.extend(command);

    let retries_value = req.flags.string(retries);
    let mut health = HealthConfig {
        test,
        interval: interval_flag(req, interval, "interval")?,
        timeout: interval_flag(req, timeout, "timeout")?,
        start_period: interval_flag(req, start_period, "start-period")?,
        start_interval: interval_flag(req, start_interval, "start-interval")?,
        retries: 0,
    };
    if !retries_value.is_empty() {
        let n =
            parse_go_int(&retries_value, 32).map_err(|message| Error::Retries { message, span })?;
        if n < 0 {
            return Err(Error::NegativeRetries { value: n, span });
        }
        health.retries = n;
    }
    Ok(HealthcheckInstruction {
        origin: req.origin(),
        health,
    })
}

/// BuildKit's `parseOptInterval`: empty is 0, 0 is 0, anything else must be at least 1ms.
fn interval_flag(req: &Request, id: FlagId, name: &str) -> Result<Duration, Error> {
    parse_interval(&req.flags.string(id)).map_err(|e| match e {
        IntervalError::Syntax(message) => Error::Duration {
            message,
            span: req.span(),
        },
        IntervalError::TooShort => Error::IntervalTooShort {
            flag: name.to_string(),
            span: req.span(),
        },
    })
}

#[derive(Debug, PartialEq)]
enum IntervalError {
    Syntax(String),
    TooShort,
}

fn parse_interval(value: &str) -> Result<Duration, IntervalError> {
    if value.is_empty() {
        return Ok(Duration::ZERO);
    }
    let nanos = parse_go_duration(value).map_err(IntervalError::Syntax)?;
    if nanos == 0 {
        return Ok(Duration::ZERO);
    }
    if nanos < 1_000_000 {
        return Err(IntervalError::TooShort);
    }
    let nanos = u64::try_from(nanos).map_err(|_| IntervalError::TooShort)?;
    Ok(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{json_node, node};
    use super::super::{parse_instruction, Instruction};
    use super::*;

    fn health(flags: &[&str], args: &[&str]) -> Result<HealthConfig, String> {
        match parse_instruction(&node("HEALTHCHECK", flags, args)) {
            Ok(Instruction::Healthcheck(h)) => Ok(h.health),
            Ok(_) => Err("not HEALTHCHECK".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn forms() {
        assert_eq!(
            health(&[], &["CMD", "hello", "world"]).unwrap().test,
            vec!["CMD-SHELL", "hello world"]
        );
        assert_eq!(
            health(&["--interval=5s"], &["none"]).unwrap().test,
            vec!["NONE"]
        );
        let Instruction::Healthcheck(h) =
            parse_instruction(&json_node("HEALTHCHECK", &["CMD", "a", "b"])).unwrap()
        else {
            panic!("not HEALTHCHECK")
        };
        assert_eq!(h.health.test, vec!["CMD", "a", "b"]);
        let h = health(
            &[
                "--interval=1s",
                "--timeout=10s",
                "--start-period=3s",
                "--start-interval=100ms",
                "--retries=5",
            ],
            &["CMD", "true"],
        )
        .unwrap();
        assert_eq!(
            healthcheck_created_by(&h),
            "HEALTHCHECK {Test:[CMD-SHELL true] Interval:1s Timeout:10s StartPeriod:3s StartInterval:100ms Retries:5}"
        );
    }

    #[test]
    fn errors() {
        let cases: &[(&[&str], &[&str], &str)] = &[
            (&[], &[], "HEALTHCHECK requires at least one argument"),
            (&[], &["NONE", "x"], "HEALTHCHECK NONE takes no arguments"),
            (&[], &["CMD"], "Missing command after HEALTHCHECK CMD"),
            (
                &[],
                &["foo", "x"],
                "Unknown type \"FOO\" in HEALTHCHECK (try CMD)",
            ),
            (
                &["--interval=50ns"],
                &["CMD", "x"],
                "Interval \"interval\" cannot be less than 1ms",
            ),
            (
                &["--timeout=-1s"],
                &["CMD", "x"],
                "Interval \"timeout\" cannot be less than 1ms",
            ),
            (
                &["--timeout=abc"],
                &["CMD", "x"],
                "time: invalid duration \"abc\"",
            ),
            (
                &["--retries=x"],
                &["CMD", "x"],
                "strconv.ParseInt: parsing \"x\": invalid syntax",
            ),
            (
                &["--retries=-1"],
                &["CMD", "x"],
                "--retries cannot be negative (-1)",
            ),
            (
                &["--intervall=1s"],
                &["CMD", "x"],
                "unknown flag: --intervall (did you mean interval?)",
            ),
        ];
        for (flags, args, want) in cases {
            assert_eq!(
                health(flags, args).unwrap_err(),
                *want,
                "{flags:?} {args:?}"
            );
        }
        assert!(health(&["--interval=0ms"], &["CMD", "x"]).is_ok());
        assert!(health(&["--interval=1ms"], &["CMD", "x"]).is_ok());
    }
}
