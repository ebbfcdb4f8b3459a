//! `strata check` end to end: the built binary on the Dockerfiles in `testdata/lint/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn testdata(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/lint")
        .join(rel)
}

fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .expect("run strata")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn reports_every_violation_and_succeeds() {
    let dir = testdata("");
    let out = strata(&["check", arg(&dir)]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let rules: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("WARNING: "))
        .map(|l| l.split(" - ").next().unwrap_or_default())
        .collect();
    assert_eq!(
        rules,
        [
            "StageNameCasing",
            "FromAsCasing",
            "MaintainerDeprecated",
            "SecretsUsedInArgOrEnv",
            "ConsistentInstructionCasing",
            "WorkdirRelativePath",
            "ExposeProtoCasing",
            "LegacyKeyValueFormat",
            "SecretsUsedInArgOrEnv",
            // Line 8: its own warning, then the one the second CMD raises about it.
            "JSONArgsRecommended",
            "MultipleInstructionsDisallowed",
            "JSONArgsRecommended",
            "UndefinedVar",
            "InvalidDefaultArgInFrom",
        ],
        "{stdout}"
    );
    assert!(stdout.contains(
        "\nWARNING: UndefinedVar - https://docs.docker.com/go/dockerfile/rule/undefined-var/\n\
         Variables should be defined before their use\n\
         Usage of undefined variable '$SRC_DIR' (did you mean $SRC_DIRS?)\n"
    ));
    assert!(
        stdout.contains("Dockerfile:11\n--------------------\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  11 | >>> COPY $SRC_DIR /app/\n"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("\nCheck complete, 14 warnings have been found!\n"),
        "{stdout}"
    );
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn file_flag_and_clean_file() {
    let file = testdata("clean/Dockerfile");
    let out = strata(&["check", "-f", arg(&file), arg(&testdata(""))]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "Check complete, no warnings found.\n");
}

#[test]
fn error_true_fails_with_the_rules_hit() {
    let out = strata(&["check", arg(&testdata("error"))]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("WARNING: ConsistentInstructionCasing - "),
        "{stdout}"
    );
    assert!(
        !stdout.contains("WARNING: JSONArgsRecommended"),
        "skipped rule reported: {stdout}"
    );
    assert!(
        stdout.ends_with("Check complete, 1 warning has been found!\n"),
        "{stdout}"
    );
    assert_eq!(
        text(&out.stderr),
        "ERROR: lint violation found for rules: ConsistentInstructionCasing\n"
    );
}

#[test]
fn parse_error_is_located() {
    let out = strata(&["check", arg(&testdata("broken"))]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("Dockerfile:2\n"), "{stderr}");
    assert!(stderr.contains(": unterminated heredoc"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_check_directive() {
    let out = strata(&["check", arg(&testdata("bad-directive"))]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "ERROR: failed to parse check options: invalid check option \"level\"\n"
    );
}

#[test]
fn build_error_after_warnings() {
    let dir = std::env::temp_dir().join(format!("strata-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("Dockerfile");
    std::fs::write(&file, "FROM scratch AS Bad\nBADCMD\n").unwrap();
    let out = strata(&["check", "-f", arg(&file)]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("WARNING: StageNameCasing"));
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .starts_with("ERROR: dockerfile parse error on line 2: unknown instruction: BADCMD\n"),
        "{stderr}"
    );
    assert!(stderr.contains("   2 | >>> BADCMD\n"), "{stderr}");
}

#[test]
fn missing_dockerfile() {
    let out = strata(&["check", arg(&testdata("nonexistent"))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("ERROR: failed to read dockerfile"));
}
