//! `MAINTAINER name`: the image author.

use super::stage::StageState;
use crate::instructions::MaintainerInstruction;

/// Lowers a MAINTAINER.
pub fn lower(st: &mut StageState, m: &MaintainerInstruction, created: &Option<String>) {
    st.image.author = m.maintainer.clone();
    st.image
        .commit(format!("MAINTAINER {}", m.maintainer), None, false, created);
}
