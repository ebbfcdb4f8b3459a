//! `WORKDIR path`: the working directory of later steps and of the image. BuildKit also
//! creates it — a `Mkdir` with parents, owned by the current USER, mode 0755 — unless it
//! is `/`; that vertex is the step's layer.

use super::paths::normalize_path;
use super::stage::{process_cmd_env, uppercase_cmd, Lowerer, StageState};
use super::LowerError;
use crate::instructions::WorkdirInstruction;
use strata_solver::op::{FileAction, FileOp, Op};

/// Lowers a WORKDIR (path already expanded by resolution).
pub fn lower(
    lw: &mut Lowerer,
    st: &mut StageState,
    workdir: &WorkdirInstruction,
) -> Result<(), LowerError> {
    let wd = normalize_path(&st.image.config.working_dir, &workdir.path, false);
    st.image.config.working_dir = wd.clone();
    st.dir = wd.clone();
    let mut layer = None;
    if wd != "/" {
        let text = uppercase_cmd(&process_cmd_env(&lw.lexer, &workdir.origin.code, &st.env));
        let name = st.prefix_command(&text, lw.options.multi_platform, true);
        // On the empty filesystem the file op has no base input, as in BuildKit.
        let op = Op::File(FileOp {
            has_base: st.vertex.is_some(),
            actions: vec![FileAction::Mkdir {
                path: wd.clone(),
                mode: 0o755,
                make_parents: true,
                owner: st.user_owner(),
                mtime: lw.epoch,
            }],
        });
        let meta = lw.meta(st, name);
        let inputs = st.vertex.into_iter().map(Into::into).collect();
        let vertex = lw.add(op, inputs, meta)?;
        st.vertex = Some(vertex);
        layer = Some(vertex);
    }
    st.image
        .commit(format!("WORKDIR {wd}"), layer, false, &lw.created);
    Ok(())
}
