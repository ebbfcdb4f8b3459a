//! `STOPSIGNAL signal`: the image's stop signal (checked by resolution).

use super::stage::StageState;
use crate::instructions::StopSignalInstruction;

/// Lowers a STOPSIGNAL.
pub fn lower(st: &mut StageState, stop: &StopSignalInstruction, created: &Option<String>) {
    st.image.config.stop_signal = stop.signal.clone();
    st.image
        .commit(format!("STOPSIGNAL {}", stop.signal), None, false, created);
}
