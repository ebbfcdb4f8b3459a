//! `strata-frontend`: Dockerfile bytes in, a typed and validated description of the build out.
//!
//! Role: parses Dockerfiles with the pest grammar in `grammar/dockerfile.pest` into an AST
//! ([`parser::Dockerfile`]) identical to BuildKit's, turns it into typed instructions, expands
//! ARG/ENV words, matches `.dockerignore` patterns and runs lint rules.
//!
//! Key decision: the frontend never touches a build's filesystem, the executor or the cache.
//! Everything it knows about a build context arrives as a value, so it builds and tests
//! without any system dependency.

// pest is built without its `std` feature (its per-rule stack probe cost 15% of parse time;
// our grammar's only recursion, JSON nesting, is bounded before parsing). Its generated code
// then names `alloc` from the crate root.
extern crate alloc;

pub mod ignore;
pub mod instructions;
pub mod lint;
pub mod lower;
pub mod parser;
pub mod shell;
