//! `SHELL ["exe", "args"]`: the shell of later shell-form RUN/CMD/ENTRYPOINT, kept in the
//! image config.

use super::stage::StageState;
use crate::instructions::ShellInstruction;

/// Lowers a SHELL.
pub fn lower(st: &mut StageState, shell: &ShellInstruction, created: &Option<String>) {
    st.image.config.shell = shell.shell.clone();
    st.image.commit(
        format!("SHELL {}", super::go_list(&shell.shell)),
        None,
        false,
        created,
    );
}
