//! `LABEL k=v …`: image labels (later values win), one history entry.

use super::stage::StageState;
use crate::instructions::LabelInstruction;

/// Lowers a LABEL (values already expanded by resolution).
pub fn lower(st: &mut StageState, label: &LabelInstruction, created: &Option<String>) {
    let mut message = String::from("LABEL");
    for pair in &label.pairs {
        st.image
            .config
            .labels
            .insert(pair.key.clone(), pair.value.clone());
        message.push(' ');
        message.push_str(&pair.display());
    }
    st.image.commit(message, None, false, created);
}
