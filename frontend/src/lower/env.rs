//! `ENV k=v …`: each pair set in the stage's environment (what RUN sees) and in the image
//! config's `Env` (replacing an earlier entry in place), then one history entry.

use super::config::add_env;
use super::stage::StageState;
use crate::instructions::EnvInstruction;

/// Lowers an ENV (values already expanded by resolution).
pub fn lower(st: &mut StageState, env: &EnvInstruction, created: &Option<String>) {
    let mut message = String::from("ENV");
    for pair in &env.pairs {
        message.push(' ');
        message.push_str(&pair.display());
        st.env.set(&pair.key, &pair.value);
        add_env(&mut st.image.config.env, &pair.key, &pair.value);
    }
    st.image.commit(message, None, false, created);
}
