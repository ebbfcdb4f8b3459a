//! BuildKit's shell-expansion conformance tables, run against
//! `strata_frontend::shell`.
//!
//! Data: `shared/conformance/shell/` (see FORMAT.md there): `envVarTest`
//! (process_word), `wordsTest` (process_words) and `process_with_matches.json`
//! (process_word_with_matches, env lookups). Each test runs every case,
//! prints `<table>: passed/total passed`, then fails listing every mismatch.
//! The totals are pinned so that a table silently losing cases fails too.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use serde_json::Value;
use strata_frontend::shell::{Env, EnvList, Lexer};

const DATA_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/conformance/shell"
);

fn read(name: &str) -> String {
    let path = format!("{DATA_DIR}/{name}");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Prints the tally and fails on any mismatch or an unexpected case count.
fn report(table: &str, total: usize, expected_total: usize, failures: &[String]) {
    println!("{table}: {}/{total} passed", total - failures.len());
    for failure in failures {
        println!("  FAIL {failure}");
    }
    assert!(
        failures.is_empty(),
        "{table}: {} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(total, expected_total, "{table}: unexpected number of cases");
}

#[test]
fn env_var_test() {
    let data = read("envVarTest");
    let env = EnvList::from_entries(["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]);
    let lexer = Lexer::new('\\');
    let (mut total, mut windows_only) = (0, 0);
    let mut failures = Vec::new();
    for (number, line) in data.lines().enumerate() {
        let number = number + 1;
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.trim().split('|').map(str::trim).collect();
        assert_eq!(
            fields.len(),
            3,
            "envVarTest:{number}: malformed line {line:?}"
        );
        let (platform, input, expected) = (fields[0], fields[1], fields[2]);
        match platform {
            "A" | "U" => {}
            "W" => {
                windows_only += 1;
                continue;
            }
            other => panic!("envVarTest:{number}: bad platform tag {other:?}"),
        }
        total += 1;
        let got = lexer.process_word(input, &env);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(value), _) => expected != "error" && value == expected,
            (Err(_), _) => false,
        };
        if !ok {
            failures.push(format!(
                "line {number}: {input:?}: expected {expected:?}, got {got:?}"
            ));
        }
    }
    assert_eq!(windows_only, 2, "envVarTest: expected 2 Windows-only lines");
    report("envVarTest", total, 228, &failures);
}

#[test]
fn words_test() {
    let data = read("wordsTest");
    let lexer = Lexer::new('\\');
    let mut env: Vec<String> = Vec::new();
    let mut total = 0;
    let mut failures = Vec::new();
    for (number, line) in data.lines().enumerate() {
        let number = number + 1;
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            // Trailing spaces of the value are significant.
            env.push(rest.trim_start_matches(' ').to_owned());
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(
            fields.len(),
            2,
            "wordsTest:{number}: malformed line {line:?}"
        );
        let input = fields[0].trim();
        let expected: Vec<&str> = fields[1].trim_start_matches(' ').split(',').collect();
        total += 1;
        let got = lexer
            .process_words(input, &EnvList::from_entries(&env))
            .unwrap_or_else(|_| vec!["error".to_owned()]);
        if got != expected {
            failures.push(format!(
                "line {number}: {input:?}: expected {expected:?}, got {got:?}"
            ));
        }
    }
    report("wordsTest", total, 24, &failures);
}

fn env_of(case: &Value) -> BTreeMap<String, String> {
    case["env"]
        .as_object()
        .expect("case has an env object")
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().expect("env value is a string").to_owned(),
            )
        })
        .collect()
}

fn names(case: &Value, key: &str) -> BTreeSet<String> {
    case[key]
        .as_array()
        .unwrap_or_else(|| panic!("case has a {key} array"))
        .iter()
        .map(|v| v.as_str().expect("name is a string").to_owned())
        .collect()
}

fn cases<'a>(doc: &'a Value, key: &str) -> &'a Vec<Value> {
    doc[key]
        .as_array()
        .unwrap_or_else(|| panic!("process_with_matches.json has no {key} array"))
}

fn input_of(case: &Value) -> &str {
    case["input"].as_str().expect("case has an input string")
}

#[test]
fn process_with_matches() {
    let doc: Value = serde_json::from_str(&read("process_with_matches.json")).unwrap();
    let lexer = Lexer::new('\\');
    let list = cases(&doc, "process_with_matches");
    let mut failures = Vec::new();
    for (i, case) in list.iter().enumerate() {
        let input = input_of(case);
        let got = lexer.process_word_with_matches(input, &env_of(case));
        let ok = if case["error"].as_bool() == Some(true) {
            got.is_err()
        } else {
            let expected = case["expected"].as_str().expect("case has expected");
            got.as_ref().is_ok_and(|e| {
                e.value == expected
                    && e.matched == names(case, "matches")
                    && e.unmatched == names(case, "unmatched")
            })
        };
        if !ok {
            failures.push(format!("#{i} {input:?}: expected {case}, got {got:?}"));
        }
    }
    report("process_with_matches", list.len(), 47, &failures);
}

#[test]
fn platform_release_name() {
    let doc: Value = serde_json::from_str(&read("process_with_matches.json")).unwrap();
    let lexer = Lexer::new('\\');
    let list = cases(&doc, "platform_release_name");
    let mut failures = Vec::new();
    for (i, case) in list.iter().enumerate() {
        let input = input_of(case);
        let expected = case["expected"].as_str().expect("case has expected");
        let got = lexer.process_word(input, &env_of(case));
        if got.as_deref() != Ok(expected) {
            failures.push(format!(
                "#{i} {input:?}: expected {expected:?}, got {got:?}"
            ));
        }
    }
    report("platform_release_name", list.len(), 3, &failures);
}

#[test]
fn mandatory_vars() {
    let doc: Value = serde_json::from_str(&read("process_with_matches.json")).unwrap();
    let lexer = Lexer::new('\\');
    let list = cases(&doc, "mandatory_vars");
    let mut failures = Vec::new();
    for (i, case) in list.iter().enumerate() {
        let input = input_of(case);
        let got = lexer.process_word(input, &env_of(case));
        let ok = match (case["expected"].as_str(), case["error_contains"].as_str()) {
            (Some(expected), None) => got.as_deref() == Ok(expected),
            (None, Some(needle)) => got.as_ref().is_err_and(|e| {
                e.to_string().contains(needle) && e.with_word(input).contains(needle)
            }),
            _ => panic!("mandatory_vars #{i}: needs exactly one of expected / error_contains"),
        };
        if !ok {
            failures.push(format!("#{i} {input:?}: expected {case}, got {got:?}"));
        }
    }
    report("mandatory_vars", list.len(), 6, &failures);
}

#[test]
fn env_lookup() {
    let doc: Value = serde_json::from_str(&read("process_with_matches.json")).unwrap();
    let list = cases(&doc, "env_lookup");
    let mut failures = Vec::new();
    for (i, case) in list.iter().enumerate() {
        let entries: Vec<&str> = case["env_list"]
            .as_array()
            .expect("case has env_list")
            .iter()
            .map(|v| v.as_str().expect("entry is a string"))
            .collect();
        let name = case["get"].as_str().expect("case has get");
        let expected = case["value"].as_str().expect("case has value");
        // An unset name reads as "" in BuildKit's getEnv; check both
        // environment flavours.
        let env_list = EnvList::from_entries(&entries);
        let from_list = Env::get(&env_list, name).unwrap_or("");
        let from_slice = Env::get(entries.as_slice(), name).unwrap_or("");
        if from_list != expected || from_slice != expected {
            failures.push(format!(
                "#{i} {entries:?} get {name:?}: expected {expected:?}, got {from_list:?} / {from_slice:?}"
            ));
        }
    }
    report("env_lookup", list.len(), 7, &failures);
}
