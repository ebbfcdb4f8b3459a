//! `USER name[:group]`: the user of later RUNs and WORKDIR directories, and of the image.

use super::stage::StageState;
use crate::instructions::UserInstruction;

/// Lowers a USER (already expanded by resolution).
pub fn lower(st: &mut StageState, user: &UserInstruction, created: &Option<String>) {
    st.user = user.user.clone();
    st.image.config.user = user.user.clone();
    st.image
        .commit(format!("USER {}", user.user), None, false, created);
}
