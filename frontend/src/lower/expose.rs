//! `EXPOSE port[/proto] …`: `port/proto` keys in the image config.

use super::config::Empty;
use super::stage::StageState;
use super::LowerError;
use crate::instructions::{expose_created_by, parse_ports, Error, ExposeInstruction};

/// Lowers an EXPOSE (words expanded and split by resolution).
pub fn lower(
    st: &mut StageState,
    expose: &ExposeInstruction,
    created: &Option<String>,
) -> Result<(), LowerError> {
    let span = expose.origin.span;
    let ports = parse_ports(&expose.ports).map_err(|error| LowerError::Instruction {
        error: Box::new(Error::Port { error, span }),
        line: span.start_line,
    })?;
    for p in &ports {
        st.image.config.exposed_ports.insert(p.clone(), Empty {});
    }
    st.image
        .commit(expose_created_by(&ports), None, false, created);
    Ok(())
}
