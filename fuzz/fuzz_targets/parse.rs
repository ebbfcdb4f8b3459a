//! Any bytes through the frontend must never panic: parse, dump, type every instruction and
//! resolve the stages, run the lint rules. Whatever parses must carry sane line numbers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_frontend::{instructions, lint, parser};

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
    if let Ok(options) = lint::CheckOptions::from_source(data) {
        let _ = lint::check(&file, &options);
    }
    let Ok((stages, meta_args)) = instructions::parse_stages(&file) else { return };
    let options = instructions::ResolveOptions { escape: file.escape, ..Default::default() };
    let _ = instructions::resolve(&stages, &meta_args, &options);
});
