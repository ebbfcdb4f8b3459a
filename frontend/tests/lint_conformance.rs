//! Build-check conformance: the cases in `testdata/lint/cases.json`, transcribed from
//! BuildKit's `frontend/dockerfile/dockerfile_check_test.go` (plus a few of Strata's own),
//! run through `lint::check`. Each expects the exact rule, line and message of every warning,
//! and the build error or lint violation, if any.

use serde::Deserialize;
use std::collections::BTreeMap;
use strata_frontend::lint::{self, CheckOptions, Platform};
use strata_frontend::parser;

#[derive(Debug, Deserialize)]
struct Suite {
    platform: String,
    rules: Vec<RuleDef>,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct RuleDef {
    name: String,
    description: String,
    url: String,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    source: String,
    dockerfile: String,
    warnings: Vec<Expected>,
    error: Option<String>,
    error_line: Option<usize>,
    #[serde(default)]
    image_env: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
struct Expected {
    line: usize,
    message: String,
    rule: String,
}

fn suite() -> Suite {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/lint/cases.json");
    let text = std::fs::read_to_string(path).expect("read cases.json");
    serde_json::from_str(&text).expect("parse cases.json")
}

/// Runs one case; returns what differs from the expectation.
fn run_case(case: &Case, platform: &Platform) -> Vec<String> {
    let mut problems = Vec::new();
    let src = case.dockerfile.as_bytes();
    let file = match parser::parse(src) {
        Ok(f) => f,
        Err(e) => return vec![format!("parse error: {e}")],
    };
    let mut options = match CheckOptions::from_source(src) {
        Ok(o) => o,
        Err(e) => return vec![format!("check directive error: {e}")],
    };
    options.platform = platform.clone();
    options.image_env = case.image_env.clone();
    let report = lint::check(&file, &options);

    let mut got: Vec<Expected> = report
        .warnings
        .iter()
        .map(|w| Expected {
            line: w.span.start_line,
            message: w.message.clone(),
            rule: w.rule.to_string(),
        })
        .collect();
    got.sort();
    let mut want = case.warnings.clone();
    want.sort();
    if got != want {
        problems.push(format!("warnings:\n  got  {got:?}\n  want {want:?}"));
    }
    for w in &report.warnings {
        match lint::rules::find(w.rule) {
            Some(r) if r.description == w.description && r.url == w.url => {}
            _ => problems.push(format!("{}: description or url not the registry's", w.rule)),
        }
    }

    let (error, line) = match (&report.error, report.violation()) {
        (Some(e), _) => (Some(e.message.clone()), e.span.map(|s| s.start_line)),
        (None, Some(v)) => (Some(v), None),
        (None, None) => (None, None),
    };
    if error != case.error {
        problems.push(format!("error: got {error:?}, want {:?}", case.error));
    }
    if case.error_line.is_some() && line != case.error_line {
        problems.push(format!(
            "error line: got {line:?}, want {:?}",
            case.error_line
        ));
    }
    problems
}

#[test]
fn buildkit_lint_cases() {
    let suite = suite();
    let platform = Platform::parse(&suite.platform).unwrap();
    assert!(suite.cases.len() >= 80, "cases.json lost cases");
    let mut failures = Vec::new();
    for case in &suite.cases {
        let problems = run_case(case, &platform);
        if !problems.is_empty() {
            failures.push(format!(
                "{} ({}):\n{}",
                case.name,
                case.source,
                problems.join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        suite.cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn registry_matches_buildkit_ruleset() {
    let suite = suite();
    assert_eq!(lint::rules::ALL.len(), suite.rules.len());
    for def in &suite.rules {
        let rule = lint::rules::find(&def.name)
            .unwrap_or_else(|| panic!("rule {} missing from the registry", def.name));
        assert_eq!(rule.description, def.description, "{}", def.name);
        assert_eq!(rule.url, def.url, "{}", def.name);
    }
}

#[test]
fn every_rule_is_exercised() {
    let suite = suite();
    for rule in lint::rules::ALL {
        assert!(
            suite
                .cases
                .iter()
                .any(|c| c.warnings.iter().any(|w| w.rule == rule.name)),
            "no case expects {}",
            rule.name
        );
    }
}

#[test]
fn bad_check_directive_is_buildkits_error() {
    let err =
        CheckOptions::from_source(b"# check=skip=all;mode=strict\nFROM scratch\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"failed to parse check options: invalid check option "mode""#
    );
    assert_eq!(err.line, 1);
    let ok = CheckOptions::from_source(b"#!/usr/bin/env strata\n# check=error=1\nFROM scratch\n");
    assert!(ok.unwrap().config.error);
}

#[test]
fn arbitrary_input_never_panics() {
    // Every case's Dockerfile cut at each byte, so that checks meet half-written instructions.
    let suite = suite();
    let platform = Platform::parse(&suite.platform).unwrap();
    for case in &suite.cases {
        let src = case.dockerfile.as_bytes();
        for end in 0..=src.len() {
            if let Ok(file) = parser::parse(&src[..end]) {
                let mut options = CheckOptions::from_source(&src[..end]).unwrap_or_default();
                options.platform = platform.clone();
                let _ = lint::check(&file, &options);
            }
        }
    }
}

#[test]
fn mutated_input_never_panics() {
    // A fixed xorshift sequence splices Dockerfile syntax into every case at random places.
    const PIECES: [&str; 24] = [
        "$",
        "${",
        "}",
        ":?",
        ":-",
        "/",
        "\\",
        "\"",
        "'",
        "<<EOF\n",
        "=",
        "\n",
        "\\\n",
        " AS ",
        "\nFROM ",
        "\nONBUILD ",
        "--from=0 ",
        "--platform=",
        "\nARG ",
        "\nCOPY ",
        "\nEXPOSE ",
        "--mount=from=",
        "\n# check=skip=all\n",
        ":80:",
    ];
    let suite = suite();
    let platform = Platform::parse(&suite.platform).unwrap();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut checked = 0;
    for case in &suite.cases {
        for _ in 0..40 {
            let mut text = case.dockerfile.clone();
            for _ in 0..3 {
                let boundaries: Vec<usize> = (0..=text.len())
                    .filter(|&i| text.is_char_boundary(i))
                    .collect();
                let at = boundaries[(next() as usize) % boundaries.len()];
                text.insert_str(at, PIECES[(next() as usize) % PIECES.len()]);
            }
            if let Ok(file) = parser::parse(text.as_bytes()) {
                let mut options = CheckOptions::from_source(text.as_bytes()).unwrap_or_default();
                options.platform = platform.clone();
                let _ = lint::check(&file, &options);
                checked += 1;
            }
        }
    }
    assert!(checked > 1000, "only {checked} mutations parsed");
}
