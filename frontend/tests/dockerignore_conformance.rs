//! Conformance of `strata_frontend::ignore` against the shared `.dockerignore`
//! data (see `shared/conformance/dockerignore/FORMAT.md`): pattern rows from
//! moby's tests, the ignore-file reader case, and fsutil's filtered-walk cases,
//! which are replayed on real temporary directories walked with `std::fs`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use strata_frontend::ignore::{
    find_ignore_file, matches_legacy, read_ignore, Action, FilterOptions, FilteredWalk,
    PatternMatcher, WalkFilter,
};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/conformance/dockerignore"
);

/// Row count stated in FORMAT.md; guards against a truncated or misread file.
const EXPECTED_TSV_ROWS: usize = 188;

fn data_path(name: &str) -> PathBuf {
    Path::new(DATA).join(name)
}

fn read_text(name: &str) -> String {
    let path = data_path(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn report(label: &str, total: usize, failures: &[String]) {
    println!("{label}: {}/{total} passed", total - failures.len());
    assert!(total > 0, "{label}: no cases were run");
    assert!(
        failures.is_empty(),
        "{label}: {} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------- cases.tsv

#[test]
fn cases_tsv() {
    let text = read_text("cases.tsv");
    let mut lines = text.lines();
    let header = lines.next().expect("header line");
    assert!(
        header.starts_with("patterns\tpath\texpected\tapi\tos"),
        "unexpected header {header:?}"
    );

    let mut total = 0;
    let mut skipped = 0;
    let mut failures = Vec::new();
    let mut legacy_note_rows = 0;
    for (index, line) in lines.enumerate() {
        let line_no = index + 2;
        let cols: Vec<&str> = line.split('\t').collect();
        assert!(
            cols.len() >= 6,
            "line {line_no}: expected at least 6 columns: {line:?}"
        );
        let patterns: Vec<String> = serde_json::from_str(cols[0])
            .unwrap_or_else(|e| panic!("line {line_no}: patterns column: {e}"));
        let path: String = serde_json::from_str(cols[1])
            .unwrap_or_else(|e| panic!("line {line_no}: path column: {e}"));
        let (expected, api, os) = (cols[2], cols[3], cols[4]);
        let note = cols.get(6).copied().unwrap_or("");
        if os == "unix" && cfg!(windows) {
            skipped += 1;
            continue;
        }
        total += 1;

        let got = match api {
            "MatchesOrParentMatches" => modern(&patterns, &path),
            "Matches" => outcome(matches_legacy(&path, &patterns)),
            "ReadAll+MatchesOrParentMatches" => {
                let patterns = read_ignore(patterns.join("\n").as_bytes());
                modern(&patterns, &path)
            }
            other => panic!("line {line_no}: unknown api {other:?}"),
        };
        if got != expected {
            failures.push(format!(
                "  line {line_no}: {api} {patterns:?} {path:?}: expected {expected}, got {got}"
            ));
        }

        // The one row where the legacy helper differs must differ here too.
        if !note.is_empty() {
            legacy_note_rows += 1;
            let legacy = outcome(matches_legacy(&path, &patterns));
            if legacy != "false" {
                failures.push(format!(
                    "  line {line_no}: legacy semantics should give false for {patterns:?} {path:?}, got {legacy}"
                ));
            }
        }
    }
    assert_eq!(
        total + skipped,
        EXPECTED_TSV_ROWS,
        "cases.tsv row count changed; update EXPECTED_TSV_ROWS if FORMAT.md agrees"
    );
    assert_eq!(legacy_note_rows, 1, "expected exactly one row with a note");
    report("cases.tsv", total, &failures);
}

fn modern(patterns: &[String], path: &str) -> &'static str {
    outcome(PatternMatcher::new(patterns).map(|matcher| matcher.matches_or_parent_matches(path)))
}

fn outcome<E>(result: Result<bool, E>) -> &'static str {
    match result {
        Ok(true) => "true",
        Ok(false) => "false",
        Err(_) => "error",
    }
}

// ------------------------------------------------------------------ readall

#[test]
fn readall() {
    let input = fs::read(data_path("readall/input.dockerignore")).expect("readall input");
    let expected: Vec<String> = read_text("readall/expected.txt")
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(!expected.is_empty(), "expected.txt is empty");
    let got = read_ignore(&input);
    let failures = if got == expected {
        Vec::new()
    } else {
        vec![format!("  expected {expected:?}\n  got      {got:?}")]
    };
    report("readall", 1, &failures);
}

// ----------------------------------------------------------- walk_cases.json

fn walk_cases() -> Value {
    serde_json::from_str(&read_text("walk_cases.json")).expect("walk_cases.json parses")
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|v| v.as_str().expect("string array").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn options_from(case: &Value) -> FilterOptions {
    FilterOptions {
        include_patterns: strings(case.get("include")),
        exclude_patterns: strings(case.get("exclude")),
        follow_targets: None,
    }
}

fn case_name(case: &Value) -> &str {
    case["name"].as_str().unwrap_or("<unnamed>")
}

/// A scratch directory under the system temp dir, removed on drop.
struct TempTree {
    root: PathBuf,
}

impl TempTree {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "strata-dockerignore-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).expect("create temp dir");
        TempTree { root }
    }

    /// Creates entries given as `"<path> <dir|file>"`, in order.
    fn with_entries(entries: &[String]) -> Self {
        let tree = TempTree::new();
        for entry in entries {
            let (path, kind) = entry
                .rsplit_once(' ')
                .expect("tree entry \"<path> <kind>\"");
            let target = tree.root.join(path);
            match kind {
                "dir" => fs::create_dir_all(&target).expect("create dir"),
                "file" => fs::write(&target, b"").expect("create file"),
                other => panic!("unknown entry kind {other:?}"),
            }
        }
        tree
    }

    fn with_files(files: &serde_json::Map<String, Value>) -> Self {
        let tree = TempTree::new();
        for (name, content) in files {
            fs::write(tree.root.join(name), content.as_str().unwrap_or_default())
                .expect("create file");
        }
        tree
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Walks `root` depth-first in lexical order through a stack of filters (inner
/// first), the way fsutil stacks filtered filesystems: each layer sees what the
/// layer below emits. Returns `"<dir|file> <path>"` lines.
fn filtered_walk(root: &Path, filters: &[WalkFilter]) -> Vec<String> {
    let mut layers: Vec<FilteredWalk<'_>> = filters.iter().map(FilteredWalk::new).collect();
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    walk_dir(root, "", &mut layers, &mut out, &mut skipped);
    out
}

fn walk_dir(
    dir: &Path,
    rel: &str,
    layers: &mut [FilteredWalk<'_>],
    out: &mut Vec<String>,
    skipped: &mut Vec<String>,
) {
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)
        .expect("read_dir")
        .collect::<Result<_, _>>()
        .expect("dir entry");
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name().into_string().expect("UTF-8 test names");
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        // An outer layer may have skipped a directory emitted late by an inner one.
        if skipped
            .iter()
            .any(|prefix| path.starts_with(prefix.as_str()))
        {
            continue;
        }
        let is_dir = entry.file_type().expect("file type").is_dir();
        if feed(layers, &path, is_dir, out, skipped) && is_dir {
            walk_dir(&entry.path(), &path, layers, out, skipped);
        }
    }
}

/// Passes one entry through the filter layers; returns whether a directory
/// should be walked into.
fn feed(
    layers: &mut [FilteredWalk<'_>],
    path: &str,
    is_dir: bool,
    out: &mut Vec<String>,
    skipped: &mut Vec<String>,
) -> bool {
    let Some((layer, outer)) = layers.split_first_mut() else {
        out.push(format!("{} {path}", if is_dir { "dir" } else { "file" }));
        return true;
    };
    let visit = layer.visit(path, is_dir);
    for parent in &visit.emit_parents {
        if !feed(outer, parent, true, out, skipped) {
            skipped.push(format!("{parent}/"));
            return false;
        }
    }
    match visit.action {
        Action::Include => feed(outer, path, is_dir, out, skipped),
        Action::Exclude => true,
        Action::SkipDir => false,
    }
}

#[test]
fn walk_cases_walk() {
    let cases = walk_cases();
    let cases = cases["walk"].as_array().expect("walk[]");
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let tree = TempTree::with_entries(&strings(case.get("tree")));
        let filters: Vec<WalkFilter> = match case.get("stack").and_then(Value::as_array) {
            Some(stack) => stack
                .iter()
                .map(|layer| WalkFilter::new(&options_from(layer)).expect("valid stacked filter"))
                .collect(),
            None => vec![WalkFilter::new(&options_from(case)).expect("valid filter")],
        };
        let got = filtered_walk(&tree.root, &filters);
        let expected = strings(case.get("expected"));
        if got != expected {
            failures.push(format!(
                "  #{i} {}: include {:?} exclude {:?}\n    expected {expected:?}\n    got      {got:?}",
                case_name(case),
                strings(case.get("include")),
                strings(case.get("exclude")),
            ));
        }
    }
    report("walk_cases.json walk", cases.len(), &failures);
}

#[test]
fn walk_cases_open() {
    let cases = walk_cases();
    let cases = cases["open"].as_array().expect("open[]");
    let mut total = 0;
    let mut failures = Vec::new();
    for case in cases {
        let tree = TempTree::with_entries(&strings(case.get("tree")));
        let filter = WalkFilter::new(&options_from(case)).expect("valid filter");
        let opens = case["open"].as_object().expect("open map");
        for (path, expected) in opens {
            total += 1;
            let got = if filter.open_allowed(path) && tree.root.join(path).exists() {
                "ok"
            } else {
                "not-exist"
            };
            if Some(got) != expected.as_str() {
                failures.push(format!(
                    "  {}: open {path:?}: expected {expected}, got {got}",
                    case_name(case)
                ));
            }
        }
    }
    report("walk_cases.json open", total, &failures);
}

#[test]
fn walk_cases_errors() {
    let cases = walk_cases();
    let cases = cases["errors"].as_array().expect("errors[]");
    let mut failures = Vec::new();
    for case in cases {
        if WalkFilter::new(&options_from(case)).is_ok() {
            failures.push(format!("  {}: filter was accepted", case_name(case)));
        }
    }
    report("walk_cases.json errors", cases.len(), &failures);
}

#[test]
fn walk_cases_build_context() {
    let cases = walk_cases();
    let cases = cases["build_context"].as_array().expect("build_context[]");
    let mut failures = Vec::new();
    for case in cases {
        let name = case_name(case);
        let files = case["context_files"].as_object().expect("context_files");
        let dockerfile = case["dockerfile_name"].as_str().expect("dockerfile_name");
        let tree = TempTree::with_files(files);

        // Here the Dockerfile source and the context are the same directory.
        let ignore = find_ignore_file(dockerfile, |c| tree.root.join(&c.path).is_file());
        let patterns = match ignore {
            Some(candidate) => {
                read_ignore(&fs::read(tree.root.join(&candidate.path)).expect("read ignore file"))
            }
            None => Vec::new(),
        };
        let filter = WalkFilter::new(&FilterOptions {
            exclude_patterns: patterns,
            ..FilterOptions::default()
        });
        let wants_error = case.get("build_error").and_then(Value::as_bool) == Some(true);
        let filter = match (filter, wants_error) {
            (Err(_), true) => continue,
            (Ok(_), true) => {
                failures.push(format!("  {name}: expected the ignore file to be rejected"));
                continue;
            }
            (Err(e), false) => {
                failures.push(format!("  {name}: unexpected error {e}"));
                continue;
            }
            (Ok(filter), false) => filter,
        };

        // `COPY . .` copies what the filtered walk emits.
        let copied = filtered_walk(&tree.root, std::slice::from_ref(&filter));
        let present = case["present_in_result"]
            .as_object()
            .expect("present_in_result");
        for (file, content) in present {
            if !copied.contains(&format!("file {file}")) {
                failures.push(format!("  {name}: {file} missing from {copied:?}"));
            } else if fs::read_to_string(tree.root.join(file)).ok().as_deref() != content.as_str() {
                failures.push(format!("  {name}: {file} has the wrong contents"));
            }
        }
        for file in strings(case.get("absent_in_result")) {
            if copied.contains(&format!("file {file}")) {
                failures.push(format!("  {name}: {file} should have been excluded"));
            }
        }
    }
    report("walk_cases.json build_context", cases.len(), &failures);
}
