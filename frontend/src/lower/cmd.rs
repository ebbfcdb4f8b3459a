//! `CMD`: the image's default command (shell form through the stage's SHELL).

use super::stage::StageState;
use crate::instructions::CmdInstruction;

/// Lowers a CMD.
pub fn lower(st: &mut StageState, cmd: &CmdInstruction, created: &Option<String>) {
    let mut args = cmd.command.args.clone();
    if cmd.command.prepend_shell {
        args = st.with_shell(&args);
    }
    st.image.config.cmd = args.clone();
    // BuildKit sets ArgsEscaped on every CMD.
    st.image.config.args_escaped = true;
    st.cmd_set = true;
    st.image.commit(
        format!("CMD {}", super::go_quoted_list(&args)),
        None,
        false,
        created,
    );
}
