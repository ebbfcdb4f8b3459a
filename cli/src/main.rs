//! `strata`: the command line. Parses flags, runs the engine, renders progress and errors.
fn main() {}
