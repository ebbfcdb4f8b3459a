//! The pest parser generated from `grammar/dockerfile.pest`.

/// Parser over the rules of `grammar/dockerfile.pest`.
#[derive(Debug, pest_derive::Parser)]
#[grammar = "../../grammar/dockerfile.pest"]
pub(crate) struct DockerfileGrammar;
