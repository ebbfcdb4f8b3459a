//! `ARG name[=default] …`: values in force (resolved by resolution) join the stage's
//! environment — what RUN sees, never the image config — and the build args listed in RUN
//! history (`RUN |1 NAME=value …`).

use super::stage::{arg_sets_env, StageState};
use crate::instructions::ArgInstruction;

/// Lowers an ARG.
pub fn lower(st: &mut StageState, arg: &ArgInstruction, created: &Option<String>) {
    let mut parts = Vec::with_capacity(arg.args.len());
    for def in &arg.args {
        if let Some(value) = &def.value {
            if arg_sets_env(&def.key) {
                st.env.set(&def.key, value);
            }
        }
        st.build_args.push((def.key.clone(), def.value.clone()));
        parts.push(match &def.value {
            Some(v) => format!("{}={v}", def.key),
            None => def.key.clone(),
        });
    }
    st.image
        .commit(format!("ARG {}", parts.join(" ")), None, false, created);
}
