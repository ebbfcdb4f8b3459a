//! BuildKit's expectations for the typed instruction layer and stage resolution
//! (`../shared/conformance/instructions/*.json`), run against `strata_frontend::instructions`.
//!
//! Each test prints `<file>: passed/total passed[, N skipped (why)]` and fails with the list
//! of mismatches. Cases of stage `build` need the build engine and are counted as skipped,
//! with their notes printed. Every test also checks it ran the number of cases the file
//! holds, so an empty or misread file fails instead of passing silently.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use strata_frontend::instructions::{
    expose_created_by, healthcheck_created_by, parse_instruction, parse_port, parse_ports,
    parse_stages, resolve, HealthConfig, Instruction, ResolveOptions,
};
use strata_frontend::parser;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/instructions")
}

fn load(name: &str) -> Value {
    let path = data_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

fn text<'a>(case: &'a Value, key: &str) -> &'a str {
    case.get(key).and_then(Value::as_str).unwrap_or("")
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Tallies one file's results and reports them.
#[derive(Default)]
struct Tally {
    passed: usize,
    skipped: usize,
    failures: Vec<String>,
}

impl Tally {
    fn check(&mut self, ok: Result<(), String>, label: &str) {
        match ok {
            Ok(()) => self.passed += 1,
            Err(why) => self.failures.push(format!("{label}: {why}")),
        }
    }

    fn finish(self, file: &str, expected_total: usize, skip_reason: &str) {
        let ran = self.passed + self.failures.len();
        let mut line = format!("{file}: {}/{ran} passed", self.passed);
        if self.skipped > 0 {
            line.push_str(&format!(", {} skipped ({skip_reason})", self.skipped));
        }
        println!("{line}");
        assert_eq!(
            ran + self.skipped,
            expected_total,
            "{file}: ran {ran} and skipped {} cases, the file holds {expected_total}",
            self.skipped
        );
        assert!(ran > 0, "{file}: no case ran");
        assert!(
            self.failures.is_empty(),
            "{file}: {} mismatches:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

/// Parses a Dockerfile from the data, turning a parser failure into a mismatch.
fn parse(dockerfile: &str) -> Result<parser::Dockerfile, String> {
    parser::parse(dockerfile.as_bytes()).map_err(|e| format!("parser rejected it: {e}"))
}

/// The first instruction of `dockerfile`, typed.
fn first_instruction(dockerfile: &str) -> Result<Result<Instruction, String>, String> {
    let file = parse(dockerfile)?;
    let node = file.nodes.first().ok_or("no instruction")?;
    Ok(parse_instruction(node).map_err(|e| e.to_string()))
}

/// The whole pre-build pipeline: stages, then resolution with the case's target.
fn convert(dockerfile: &str, target: Option<&str>) -> Result<Result<(), String>, String> {
    let file = parse(dockerfile)?;
    let (stages, meta) = match parse_stages(&file) {
        Ok(v) => v,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let options = ResolveOptions {
        target: target.map(str::to_string),
        escape: file.escape,
        ..ResolveOptions::default()
    };
    Ok(resolve(&stages, &meta, &options)
        .map(|_| ())
        .map_err(|e| e.to_string()))
}

/// Compares an outcome with `error_exact` / `error_contains` (string or list; "" = any).
fn expect_error(case: &Value, outcome: Result<(), String>) -> Result<(), String> {
    let message = match outcome {
        Ok(()) => return Err("succeeded, an error was expected".to_string()),
        Err(m) => m,
    };
    if let Some(exact) = case.get("error_exact").and_then(Value::as_str) {
        return if message == exact {
            Ok(())
        } else {
            Err(format!("got {message:?}, want exactly {exact:?}"))
        };
    }
    let wanted = match case.get("error_contains") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(_)) => strings(case.get("error_contains")),
        _ => return Err("case has no error expectation".to_string()),
    };
    for part in &wanted {
        if !message.contains(part.as_str()) {
            return Err(format!("got {message:?}, want it to contain {part:?}"));
        }
    }
    Ok(())
}

#[test]
fn errors_json() {
    let data = load("errors.json");
    let cases = data["cases"].as_array().expect("cases");
    let mut tally = Tally::default();
    for (i, case) in cases.iter().enumerate() {
        let dockerfile = text(case, "dockerfile");
        let label = format!("case {i} [{}] {dockerfile:?}", text(case, "stage"));
        let outcome = match text(case, "stage") {
            "instruction" => first_instruction(dockerfile).map(|r| r.map(|_| ())),
            "convert" => {
                let target = case.get("target").and_then(Value::as_str);
                convert(dockerfile, target)
            }
            "build" => {
                tally.skipped += 1;
                println!("  skipped (build stage): {label}: {}", text(case, "note"));
                continue;
            }
            other => Err(format!("unknown stage {other:?}")),
        };
        tally.check(outcome.and_then(|o| expect_error(case, o)), &label);
    }
    tally.finish("errors.json", cases.len(), "build stage");
}

#[test]
fn copy_heredoc_json() {
    let data = load("copy-heredoc.json");
    let cases = data["cases"].as_array().expect("cases");
    let mut tally = Tally::default();
    for (i, case) in cases.iter().enumerate() {
        let dockerfile = text(case, "dockerfile");
        let check = || -> Result<(), String> {
            let copy = match first_instruction(dockerfile)?? {
                Instruction::Copy(c) => c,
                other => return Err(format!("typed as {}", other.name())),
            };
            let want_paths = strings(case.get("source_paths"));
            let want_contents: Vec<(String, String, bool)> = case["source_contents"]
                .as_array()
                .ok_or("no source_contents")?
                .iter()
                .map(|c| {
                    (
                        text(c, "path").to_string(),
                        text(c, "data").to_string(),
                        c["expand"].as_bool().unwrap_or(true),
                    )
                })
                .collect();
            let got_contents: Vec<(String, String, bool)> = copy
                .files
                .contents
                .iter()
                .map(|c| (c.path.clone(), c.data.clone(), c.expand))
                .collect();
            if copy.files.dest != text(case, "dest") {
                return Err(format!("dest {:?}", copy.files.dest));
            }
            if copy.files.paths != want_paths {
                return Err(format!(
                    "source paths {:?}, want {want_paths:?}",
                    copy.files.paths
                ));
            }
            if got_contents != want_contents {
                return Err(format!("contents {got_contents:?}, want {want_contents:?}"));
            }
            Ok(())
        };
        tally.check(check(), &format!("case {i} {dockerfile:?}"));
    }
    tally.finish("copy-heredoc.json", cases.len(), "");
}

#[test]
fn run_heredoc_json() {
    let data = load("run-heredoc.json");
    let cases = data["cases"].as_array().expect("cases");
    let flag_cases = data["flags_used"].as_array().expect("flags_used");
    let mut tally = Tally::default();
    let run_of = |dockerfile: &str| -> Result<_, String> {
        match first_instruction(dockerfile)?? {
            Instruction::Run(r) => Ok(r),
            other => Err(format!("typed as {}", other.name())),
        }
    };
    for (i, case) in cases.iter().enumerate() {
        let dockerfile = text(case, "dockerfile");
        let check = || -> Result<(), String> {
            let run = run_of(dockerfile)?;
            let want_shell = case["prepend_shell"].as_bool().ok_or("no prepend_shell")?;
            if run.command.prepend_shell != want_shell {
                return Err(format!("prepend_shell {}", run.command.prepend_shell));
            }
            let want_cmdline = strings(case.get("cmdline"));
            if run.command.args != want_cmdline {
                return Err(format!(
                    "cmdline {:?}, want {want_cmdline:?}",
                    run.command.args
                ));
            }
            let want_files: Vec<(String, String, bool)> = case["files"]
                .as_array()
                .ok_or("no files")?
                .iter()
                .map(|f| {
                    (
                        text(f, "name").to_string(),
                        text(f, "data").to_string(),
                        f["chomp"].as_bool().unwrap_or(false),
                    )
                })
                .collect();
            let got_files: Vec<(String, String, bool)> = run
                .command
                .files
                .iter()
                .map(|f| (f.name.clone(), f.data.clone(), f.chomp))
                .collect();
            if got_files != want_files {
                return Err(format!("files {got_files:?}, want {want_files:?}"));
            }
            Ok(())
        };
        tally.check(check(), &format!("case {i} {dockerfile:?}"));
    }
    for (i, case) in flag_cases.iter().enumerate() {
        let dockerfile = text(case, "dockerfile");
        let check = || -> Result<(), String> {
            let run = run_of(dockerfile)?;
            let want = strings(case.get("flags_used"));
            if run.flags_used != want {
                return Err(format!("flags used {:?}, want {want:?}", run.flags_used));
            }
            Ok(())
        };
        tally.check(check(), &format!("flags_used {i} {dockerfile:?}"));
    }
    tally.finish("run-heredoc.json", cases.len() + flag_cases.len(), "");
}

#[test]
fn expose_ports_json() {
    let data = load("expose-ports.json");
    let single = data["parse_port"].as_array().expect("parse_port");
    let lists = data["parse_ports"].as_array().expect("parse_ports");
    let files = data["dockerfile"].as_array().expect("dockerfile");
    let mut tally = Tally::default();

    for (i, case) in single.iter().enumerate() {
        let spec = text(case, "spec");
        let got = parse_port(spec).map_err(|e| e.to_string());
        let check = match (case.get("error_exact").and_then(Value::as_str), got) {
            (Some(want), Err(e)) if e == want => Ok(()),
            (Some(want), other) => Err(format!("got {other:?}, want error {want:?}")),
            (None, Ok(ports)) if ports == strings(case.get("ports")) => Ok(()),
            (None, other) => Err(format!(
                "got {other:?}, want {:?}",
                strings(case.get("ports"))
            )),
        };
        tally.check(check, &format!("parse_port {i} {spec:?}"));
    }

    for (i, case) in lists.iter().enumerate() {
        let specs = strings(case.get("specs"));
        let got = parse_ports(&specs).map_err(|e| e.to_string());
        let check = match (
            case.get("error").and_then(Value::as_bool).unwrap_or(false),
            got,
        ) {
            (true, Err(_)) => Ok(()),
            (false, Ok(ports)) if ports == strings(case.get("ports")) => Ok(()),
            (want_error, other) => Err(format!(
                "got {other:?}, want error={want_error} ports={:?}",
                strings(case.get("ports"))
            )),
        };
        tally.check(check, &format!("parse_ports {i} {specs:?}"));
    }

    for (i, case) in files.iter().enumerate() {
        let dockerfile = text(case, "dockerfile");
        let check = || -> Result<(), String> {
            let file = parse(dockerfile)?;
            let (stages, meta) = parse_stages(&file).map_err(|e| e.to_string())?;
            let resolution =
                resolve(&stages, &meta, &ResolveOptions::default()).map_err(|e| e.to_string())?;
            let target = &resolution.stages[resolution.target];
            // Each EXPOSE, expanded and word-split by resolution, then turned into keys.
            let mut per_instruction = Vec::new();
            for instruction in &target.instructions {
                if let Instruction::Expose(e) = instruction {
                    per_instruction.push(parse_ports(&e.ports).map_err(|e| e.to_string())?);
                }
            }
            if let Some(want) = case.get("exposed_ports_sorted") {
                let mut all: Vec<String> = per_instruction.concat();
                all.sort();
                all.dedup();
                if all != strings(Some(want)) {
                    return Err(format!(
                        "exposed ports {all:?}, want {:?}",
                        strings(Some(want))
                    ));
                }
            }
            if let Some(want) = case
                .get("history_created_by_contains")
                .and_then(Value::as_str)
            {
                let texts: Vec<String> = per_instruction
                    .iter()
                    .map(|p| expose_created_by(p))
                    .collect();
                if !texts.iter().any(|t| t.contains(want)) {
                    return Err(format!("history {texts:?}, want one containing {want:?}"));
                }
            }
            Ok(())
        };
        tally.check(check(), &format!("dockerfile {i} {dockerfile:?}"));
    }
    tally.finish(
        "expose-ports.json",
        single.len() + lists.len() + files.len(),
        "",
    );
}

fn duration(value: &Value) -> Result<Duration, String> {
    let s = value.as_str().ok_or("duration is not a string")?;
    let (number, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).ok_or("no unit")?);
    let n: u64 = number.parse().map_err(|_| format!("bad duration {s:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(60 * n)),
        _ => Err(format!("unit of {s:?}")),
    }
}

#[test]
fn healthcheck_json() {
    let data = load("healthcheck.json");
    let cases = data["cases"].as_array().expect("cases");
    let mut tally = Tally::default();
    for (i, case) in cases.iter().enumerate() {
        let dockerfile = text(case, "dockerfile");
        let check = || -> Result<(), String> {
            let outcome = first_instruction(dockerfile)?;
            if let Some(want) = case.get("error_contains").and_then(Value::as_str) {
                return match outcome {
                    Err(e) if e.contains(want) => Ok(()),
                    other => Err(format!(
                        "got {:?}, want error containing {want:?}",
                        other.map(|i| i.name())
                    )),
                };
            }
            let health = match outcome? {
                Instruction::Healthcheck(h) => h.health,
                other => return Err(format!("typed as {}", other.name())),
            };
            if let Some(want) = case.get("test") {
                if health.test != strings(Some(want)) {
                    return Err(format!(
                        "test {:?}, want {:?}",
                        health.test,
                        strings(Some(want))
                    ));
                }
            } else if case.get("ok").and_then(Value::as_bool) != Some(true) {
                return Err("case has no expectation".to_string());
            }
            Ok(())
        };
        tally.check(check(), &format!("case {i} {dockerfile:?}"));
    }

    let history = &data["history"];
    let check = || -> Result<(), String> {
        let h = &history["health"];
        let config = HealthConfig {
            test: strings(h.get("Test")),
            interval: duration(&h["Interval"])?,
            timeout: duration(&h["Timeout"])?,
            start_period: duration(&h["StartPeriod"])?,
            start_interval: duration(&h["StartInterval"])?,
            retries: h["Retries"].as_i64().ok_or("no Retries")?,
        };
        let got = healthcheck_created_by(&config);
        let want = text(history, "created_by");
        if got == want {
            Ok(())
        } else {
            Err(format!("got {got:?}, want {want:?}"))
        }
    };
    tally.check(check(), "history created_by");
    tally.finish("healthcheck.json", cases.len() + 1, "");
}

/// The case notes in errors.json promise more than the error: a target in another case
/// resolves, as BuildKit matches stage names case-insensitively.
#[test]
fn target_lookup_ignores_case() {
    let dockerfile =
        "FROM scratch AS foo\nENV FOO bar\nFROM foo\nCOPY --from=foo f1 /\nCOPY --from=0 f2 /\n";
    let file = parser::parse(dockerfile.as_bytes()).expect("parses");
    let (stages, meta) = parse_stages(&file).expect("stages");
    let options = ResolveOptions {
        target: Some("Foo".to_string()),
        build_args: BTreeMap::new(),
        ..ResolveOptions::default()
    };
    let resolution = resolve(&stages, &meta, &options).expect("resolves");
    assert_eq!(resolution.target, 0);
    assert_eq!(resolution.order, vec![0]);
}

/// Every Dockerfile of the parser corpus goes through typing and resolution without a panic
/// (errors are fine: several are not buildable on purpose).
#[test]
fn parser_corpus_never_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance");
    let mut files = Vec::new();
    for dir in ["parser", "parser-negative"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("corpus directory") {
            let path = entry.expect("entry").path().join("Dockerfile");
            if path.exists() {
                files.push(path);
            }
        }
    }
    files.push(root.join("parser-lineinfo/Dockerfile"));
    let mut resolved = 0;
    for path in &files {
        let bytes = std::fs::read(path).expect("readable");
        let Ok(file) = parser::parse(&bytes) else {
            continue;
        };
        let Ok((stages, meta)) = parse_stages(&file) else {
            continue;
        };
        for target in [None, Some("nosuch")] {
            let options = ResolveOptions {
                target: target.map(str::to_string),
                escape: file.escape,
                ..ResolveOptions::default()
            };
            if resolve(&stages, &meta, &options).is_ok() {
                resolved += 1;
            }
        }
    }
    println!(
        "parser corpus: {} files, {resolved} resolutions succeeded",
        files.len()
    );
    assert!(files.len() >= 30, "corpus not found");
    assert!(resolved > 0, "no corpus file resolved");
}
