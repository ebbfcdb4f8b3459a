//! Any bytes through the whole frontend must never panic: parse, dump, re-parse the dump's
//! source-independent invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_frontend::parser;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = parser::parse(data) {
        let dump = parser::dump(&file);
        assert!(dump.ends_with('\n'));
        assert_eq!(dump.lines().count() >= 1, true);
        for node in &file.nodes {
            assert!(node.span.start_line >= 1 && node.span.start_line <= node.span.end_line);
        }
    }
});
