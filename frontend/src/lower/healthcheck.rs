//! `HEALTHCHECK`: the image's health check; history text is Go's `%+v` of the config.

use super::config::HealthConfig;
use super::stage::StageState;
use crate::instructions::{healthcheck_created_by, HealthcheckInstruction};

/// Lowers a HEALTHCHECK.
pub fn lower(st: &mut StageState, h: &HealthcheckInstruction, created: &Option<String>) {
    st.image.config.healthcheck = Some(HealthConfig::from(&h.health));
    st.image
        .commit(healthcheck_created_by(&h.health), None, false, created);
}
