//! `VOLUME path…`: mount points declared in the image.

use super::config::Empty;
use super::stage::StageState;
use crate::instructions::VolumeInstruction;

/// Lowers a VOLUME (paths expanded and checked non-empty by resolution).
pub fn lower(st: &mut StageState, volume: &VolumeInstruction, created: &Option<String>) {
    for v in &volume.volumes {
        st.image.config.volumes.insert(v.clone(), Empty {});
    }
    st.image.commit(
        format!("VOLUME {}", super::go_list(&volume.volumes)),
        None,
        false,
        created,
    );
}
