//! Arbitrary ignore files and paths through every `.dockerignore` API: never a panic, and the
//! incremental (walk-time) matcher must agree with the full-ancestor one.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strata_frontend::ignore::fuzz_patterns(data);
});
