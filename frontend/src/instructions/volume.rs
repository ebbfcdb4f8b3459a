//! `VOLUME path…` / `VOLUME ["path", …]`.

use super::{Error, Origin, Request};

/// `VOLUME`: mount points declared in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInstruction {
    /// Source line.
    pub origin: Origin,
    /// Paths, trimmed, unexpanded.
    pub volumes: Vec<String>,
}

pub(super) fn parse(req: &mut Request) -> Result<VolumeInstruction, Error> {
    if req.args.is_empty() {
        return Err(Error::AtLeastOneArgument {
            keyword: "VOLUME",
            span: req.span(),
        });
    }
    req.parse_flags()?;
    let mut volumes = Vec::with_capacity(req.args.len());
    for v in &req.args {
        let v = v.trim();
        if v.is_empty() {
            return Err(Error::EmptyVolume { span: req.span() });
        }
        volumes.push(v.to_string());
    }
    Ok(VolumeInstruction {
        origin: req.origin(),
        volumes,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{json_node, node};
    use super::super::{parse_instruction, Instruction};

    #[test]
    fn volumes() {
        let Instruction::Volume(v) =
            parse_instruction(&json_node("VOLUME", &[" /a ", "/b"])).unwrap()
        else {
            panic!("not VOLUME")
        };
        assert_eq!(v.volumes, vec!["/a", "/b"]);
        let err = |args: &[&str]| {
            parse_instruction(&json_node("VOLUME", args))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(err(&["  "]), "VOLUME specified can not be an empty string");
        assert_eq!(
            parse_instruction(&node("VOLUME", &[], &[]))
                .unwrap_err()
                .to_string(),
            "VOLUME requires at least one argument"
        );
    }
}
