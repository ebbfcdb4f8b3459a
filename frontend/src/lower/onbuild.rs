//! `ONBUILD <instruction>`: a trigger stored in the image config for builds that start
//! `FROM` this image or stage. BuildKit records no history entry for it.

use super::stage::StageState;
use crate::instructions::OnbuildInstruction;

/// Lowers an ONBUILD.
pub fn lower(st: &mut StageState, onbuild: &OnbuildInstruction) {
    st.image.config.on_build.push(onbuild.expression.clone());
}
