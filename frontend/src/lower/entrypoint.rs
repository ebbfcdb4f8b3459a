//! `ENTRYPOINT`: the image's entrypoint. Unless the same stage set a CMD, it clears the CMD
//! inherited from the base (BuildKit's rule), and `ENTRYPOINT []` clears the entrypoint.

use super::stage::StageState;
use crate::instructions::EntrypointInstruction;

/// Lowers an ENTRYPOINT.
pub fn lower(st: &mut StageState, e: &EntrypointInstruction, created: &Option<String>) {
    let mut args = e.command.args.clone();
    if e.command.prepend_shell {
        args = st.with_shell(&args);
    }
    st.image.config.entrypoint = args.clone();
    if !st.cmd_set {
        st.image.config.cmd.clear();
    }
    st.image.commit(
        format!("ENTRYPOINT {}", super::go_quoted_list(&args)),
        None,
        false,
        created,
    );
}
