//! `WORKDIR path`.

use super::{Error, Origin, Request};

/// `WORKDIR`: the working directory for the rest of the stage and the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkdirInstruction {
    /// Source line.
    pub origin: Origin,
    /// The path, unexpanded (relative paths are relative to the previous WORKDIR).
    pub path: String,
}

pub(super) fn parse(req: &mut Request) -> Result<WorkdirInstruction, Error> {
    let [path] = req.args.as_slice() else {
        return Err(Error::ExactlyOneArgument {
            keyword: "WORKDIR",
            span: req.span(),
        });
    };
    let path = path.clone();
    req.parse_flags()?;
    Ok(WorkdirInstruction {
        origin: req.origin(),
        path,
    })
}

/// Joins `path` onto `current` like BuildKit's `system.NormalizeWorkdir` on Linux: an
/// absolute path replaces, a relative one is appended, the result is cleaned.
pub fn normalize_workdir(current: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        let base = if current.is_empty() { "/" } else { current };
        format!("{base}/{path}")
    };
    clean_path(&joined)
}

/// Go `path.Clean` for absolute paths (`/a/./b/../c/` → `/a/c`).
pub fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::super::parse_instruction;
    use super::super::test_support::node;
    use super::*;

    #[test]
    fn one_argument() {
        assert_eq!(
            parse_instruction(&node("WORKDIR", &[], &[]))
                .unwrap_err()
                .to_string(),
            "WORKDIR requires exactly one argument"
        );
        assert!(parse_instruction(&node("WORKDIR", &["--x"], &["/a"])).is_err());
    }

    #[test]
    fn normalizes() {
        assert_eq!(normalize_workdir("/", "app"), "/app");
        assert_eq!(normalize_workdir("/app", "../srv/./x/"), "/srv/x");
        assert_eq!(normalize_workdir("/app", "/abs"), "/abs");
        assert_eq!(normalize_workdir("", "."), "/");
    }
}
