//! `COPY` and `ADD`: sources (paths, URLs, heredocs) and a destination, with their flags.

use super::{Error, Origin, Request};
use crate::parser::{chomp_heredoc_content, parse_heredoc};

use std::collections::HashMap;

/// BuildKit's `MustParseHeredoc`: the marker a word opens, if any (a marker whose name does
/// not lex counts as none).
fn marker(word: &str) -> Option<crate::parser::Heredoc> {
    parse_heredoc(word).ok().flatten()
}

/// An inline file given as a heredoc source (`COPY <<EOF /dest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceContent {
    /// File name (the heredoc name).
    pub path: String,
    /// Body, `<<-` tab stripping already applied.
    pub data: String,
    /// Whether variables in the body are expanded (false when the marker was quoted).
    pub expand: bool,
}

/// What COPY/ADD copy and where to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcesAndDest {
    /// Destination path (last argument).
    pub dest: String,
    /// Source paths, URLs or Git refs, in order.
    pub paths: Vec<String>,
    /// Heredoc sources, in order.
    pub contents: Vec<SourceContent>,
}

/// `COPY [--from=…] [--chown=…] [--chmod=…] [--link] [--parents] [--exclude=…] src… dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyInstruction {
    /// Source line.
    pub origin: Origin,
    /// Sources and destination.
    pub files: SourcesAndDest,
    /// `--from`: stage name, stage index, or image.
    pub from: Option<String>,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod` (octal or symbolic), checked once expanded.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns.
    pub excludes: Vec<String>,
}

/// `ADD [--chown=…] [--chmod=…] [--link] [--keep-git-dir] [--checksum=…] [--unpack]
/// [--exclude=…] src… dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddInstruction {
    /// Source line.
    pub origin: Origin,
    /// Sources and destination.
    pub files: SourcesAndDest,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod` (octal or symbolic), checked once expanded.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--exclude` patterns.
    pub excludes: Vec<String>,
    /// `--keep-git-dir`, when given.
    pub keep_git_dir: Option<bool>,
    /// `--checksum` of an HTTP(S) or Git source.
    pub checksum: Option<String>,
    /// `--unpack`, when given (the default depends on the source).
    pub unpack: Option<bool>,
}

pub(super) fn parse_copy(req: &mut Request) -> Result<CopyInstruction, Error> {
    if req.args.len() < 2 {
        return Err(Error::NoDestination {
            keyword: "COPY",
            span: req.span(),
        });
    }
    let chown = req.flags.add_string("chown", "");
    let from = req.flags.add_string("from", "");
    let chmod = req.flags.add_string("chmod", "");
    let link = req.flags.add_bool("link", false);
    let excludes = req.flags.add_strings("exclude");
    let parents = req.flags.add_bool("parents", false);
    req.parse_flags()?;
    let files = sources_and_dest(req, "COPY")?;
    Ok(CopyInstruction {
        origin: req.origin(),
        files,
        from: req.flags.non_empty(from),
        chown: req.flags.non_empty(chown),
        chmod: req.flags.non_empty(chmod),
        link: req.flags.bool(link),
        parents: req.flags.bool(parents),
        excludes: req.flags.strings(excludes),
    })
}

pub(super) fn parse_add(req: &mut Request) -> Result<AddInstruction, Error> {
    if req.args.len() < 2 {
        return Err(Error::NoDestination {
            keyword: "ADD",
            span: req.span(),
        });
    }
    let chown = req.flags.add_string("chown", "");
    let chmod = req.flags.add_string("chmod", "");
    let link = req.flags.add_bool("link", false);
    let keep_git_dir = req.flags.add_bool("keep-git-dir", false);
    let checksum = req.flags.add_string("checksum", "");
    let unpack = req.flags.add_bool("unpack", false);
    let excludes = req.flags.add_strings("exclude");
    req.parse_flags()?;
    let files = sources_and_dest(req, "ADD")?;
    let when_used = |id| req.flags.is_used(id).then(|| req.flags.bool(id));
    Ok(AddInstruction {
        origin: req.origin(),
        files,
        chown: req.flags.non_empty(chown),
        chmod: req.flags.non_empty(chmod),
        link: req.flags.bool(link),
        excludes: req.flags.strings(excludes),
        keep_git_dir: when_used(keep_git_dir),
        checksum: req.flags.non_empty(checksum),
        unpack: when_used(unpack),
    })
}

/// BuildKit's `parseSourcesAndDest`: the last word is the destination (never a heredoc);
/// words that are heredoc markers become inline files with the body the parser attached.
fn sources_and_dest(req: &Request, keyword: &'static str) -> Result<SourcesAndDest, Error> {
    let (dest, sources) = match req.args.split_last() {
        Some((dest, sources)) => (dest.clone(), sources),
        None => {
            return Err(Error::NoDestination {
                keyword,
                span: req.span(),
            })
        }
    };
    if marker(&dest).is_some() {
        return Err(Error::HeredocDestination {
            keyword,
            span: req.span(),
        });
    }
    let bodies: HashMap<&str, &str> = req
        .node
        .heredocs
        .iter()
        .map(|h| (h.name.as_str(), h.content.as_str()))
        .collect();
    let mut paths = Vec::new();
    let mut contents = Vec::new();
    for source in sources {
        match marker(source) {
            Some(m) => {
                // A marker without a body (JSON form) copies an empty file, as in BuildKit.
                let body = bodies.get(m.name.as_str()).copied().unwrap_or("");
                let data = if m.chomp {
                    chomp_heredoc_content(body)
                } else {
                    body.to_string()
                };
                contents.push(SourceContent {
                    path: m.name,
                    data,
                    expand: m.expand,
                });
            }
            None => paths.push(source.clone()),
        }
    }
    Ok(SourcesAndDest {
        dest,
        paths,
        contents,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{heredoc, node};
    use super::super::{parse_instruction, Instruction};

    #[test]
    fn copy_flags_and_heredocs() {
        let mut n = node(
            "COPY",
            &[
                "--from=build",
                "--chmod=755",
                "--link",
                "--exclude=*.md",
                "--exclude=x",
                "--parents",
            ],
            &["<<EOF", "foo.txt", "/bar"],
        );
        n.heredocs = vec![heredoc("EOF", "this is inline\n", true, false)];
        let Instruction::Copy(c) = parse_instruction(&n).unwrap() else {
            panic!("not COPY")
        };
        assert_eq!(c.from.as_deref(), Some("build"));
        assert_eq!(c.chmod.as_deref(), Some("755"));
        assert!(c.link && c.parents);
        assert_eq!(c.excludes, vec!["*.md", "x"]);
        assert_eq!(c.files.dest, "/bar");
        assert_eq!(c.files.paths, vec!["foo.txt"]);
        assert_eq!(c.files.contents[0].data, "this is inline\n");
    }

    #[test]
    fn add_flags() {
        let n = node(
            "ADD",
            &["--checksum=sha256:x", "--keep-git-dir=false", "--unpack"],
            &["a", "b"],
        );
        let Instruction::Add(a) = parse_instruction(&n).unwrap() else {
            panic!("not ADD")
        };
        assert_eq!(a.checksum.as_deref(), Some("sha256:x"));
        assert_eq!((a.keep_git_dir, a.unpack), (Some(false), Some(true)));
        let Instruction::Add(a) = parse_instruction(&node("ADD", &[], &["a", "b"])).unwrap() else {
            panic!("not ADD")
        };
        assert_eq!((a.keep_git_dir, a.unpack), (None, None));
    }

    #[test]
    fn errors() {
        let err = |k: &str, flags: &[&str], args: &[&str]| {
            parse_instruction(&node(k, flags, args))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("ADD", &[], &["arg1"]),
            "ADD requires at least two arguments, but only one was provided. Destination could not be determined"
        );
        assert_eq!(
            err("COPY", &[], &["/foo", "<<EOF"]),
            "COPY cannot accept a heredoc as a destination"
        );
        assert_eq!(
            err("COPY", &["--from"], &["a", "b"]),
            "missing a value on flag: --from"
        );
        assert_eq!(
            err("COPY", &["--checksum=x"], &["a", "b"]),
            "unknown flag: --checksum"
        );
        assert_eq!(
            err("ADD", &["--from=x"], &["a", "b"]),
            "unknown flag: --from"
        );
    }
}
