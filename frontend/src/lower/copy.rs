//! `COPY` and `ADD`: one file op whose actions copy each source into the destination, as
//! BuildKit's `dispatchCopy` builds it.
//!
//! - Destination: relative to WORKDIR; `""`/`.` mean WORKDIR as a directory; a trailing
//!   `/` (or `/.`) means "into this directory" and is kept for the worker.
//! - Local sources (the build context, or `--from` a stage/image): cleaned and rooted,
//!   copied with BuildKit's flags — follow symlinks, a directory's contents, wildcards
//!   allowed (a wildcard matching nothing is no error), destination parents created; ADD
//!   unpacks local archives unless `--unpack=false`. With `--parents`, `src` keeps its
//!   `/./` pivot: the directories after it are recreated under the destination.
//! - Reading the context: one context vertex for the step, including exactly its source
//!   paths (see `context.rs`).
//! - ADD URLs: an `Http` source (file named after the URL path, `--checksum` pinned),
//!   copied without unpacking unless `--unpack`; ADD Git refs: a `Git` source (ref,
//!   `--keep-git-dir`, `--checksum`), its `subdir` selected by the copy.
//! - Heredoc sources: an inline-document vertex per body (mode 0644), copied to the
//!   destination.
//! - `--chown` (`user[:group]`, resolved by the worker in the destination's `/etc/passwd`
//!   and `/etc/group`), `--chmod` (octal or symbolic), `--exclude` apply to every action.
//! - `--link` (without `--chmod`, BuildKit's condition): the copy is done onto the empty
//!   filesystem and merged over the stage (`[… k/n] LINK COPY …`); on a scratch stage the
//!   copy alone is the result.
//! - History: `COPY [--parents] [--chown=…] [--chmod=…] src… dest # buildkit`.

use super::context::{context_source, inline_document};
use super::paths::{base, clean, copy_dest, copy_source, join, llb_normalize, normalize_path};
use super::run::input_index;
use super::stage::{parse_owner, process_cmd_env, uppercase_cmd, Lowerer, StageState};
use super::LowerError;
use crate::instructions::{
    is_http_source, parse_git_ref, validate_chmod, AddInstruction, Chmod as InstructionChmod,
    CopyInstruction, DependencySource, Error, Origin, SourcesAndDest,
};
use strata_solver::op::{Chmod, FileAction, FileOp, Op, Owner, SourceOp};
use strata_solver::{Input, VertexId};

/// What one COPY/ADD asks for.
struct CopyConfig<'a> {
    is_add: bool,
    origin: &'a Origin,
    files: &'a SourcesAndDest,
    excludes: &'a [String],
    /// `--from`'s filesystem; `None` reads the build context.
    from: Option<VertexId>,
    chown: Option<&'a str>,
    chmod: Option<&'a str>,
    link: bool,
    parents: bool,
    keep_git_dir: Option<bool>,
    checksum: Option<&'a str>,
    unpack: Option<bool>,
}

/// Lowers a COPY.
pub fn lower_copy(
    lw: &mut Lowerer,
    st: &mut StageState,
    copy: &CopyInstruction,
    sources: &[DependencySource],
) -> Result<(), LowerError> {
    let line = copy.origin.span.start_line;
    let from = match &copy.from {
        None => None,
        Some(name) => {
            let fallback = DependencySource::Image(name.clone());
            let source = sources.first().unwrap_or(&fallback);
            match lw.dependency_vertex(source, line)? {
                Some(v) => Some(v),
                None => {
                    return Err(LowerError::CopyFromLaterStage {
                        from: name.clone(),
                        current: st.name.clone(),
                        line,
                    })
                }
            }
        }
    };
    lower_files(
        lw,
        st,
        CopyConfig {
            is_add: false,
            origin: &copy.origin,
            files: &copy.files,
            excludes: &copy.excludes,
            from,
            chown: copy.chown.as_deref(),
            chmod: copy.chmod.as_deref(),
            link: copy.link,
            parents: copy.parents,
            keep_git_dir: None,
            checksum: None,
            unpack: None,
        },
    )
}

/// Lowers an ADD.
pub fn lower_add(
    lw: &mut Lowerer,
    st: &mut StageState,
    add: &AddInstruction,
) -> Result<(), LowerError> {
    lower_files(
        lw,
        st,
        CopyConfig {
            is_add: true,
            origin: &add.origin,
            files: &add.files,
            excludes: &add.excludes,
            from: None,
            chown: add.chown.as_deref(),
            chmod: add.chmod.as_deref(),
            link: add.link,
            parents: false,
            keep_git_dir: add.keep_git_dir,
            checksum: add.checksum.as_deref(),
            unpack: add.unpack,
        },
    )
}

/// A Git source, when `src` is one (not the deprecated `github.com/…` form).
fn git_source(src: &str, line: usize) -> Result<Option<crate::instructions::GitRef>, LowerError> {
    match parse_git_ref(src) {
        Ok(git) if !git.indistinguishable_from_local => Ok(Some(git)),
        Err(e) if e.is_git => Err(LowerError::Instruction {
            error: Box::new(Error::GitRef {
                message: e.message,
                span: crate::parser::Span {
                    start_line: line,
                    end_line: line,
                    column: 1,
                },
            }),
            line,
        }),
        _ => Ok(None),
    }
}

fn lower_files(lw: &mut Lowerer, st: &mut StageState, cfg: CopyConfig) -> Result<(), LowerError> {
    let span = cfg.origin.span;
    let line = span.start_line;
    let dest = copy_dest(&st.dir, &cfg.files.dest);
    let owner: Option<Owner> = cfg.chown.and_then(parse_owner);
    let chmod = match cfg.chmod {
        Some(value) => Some(
            match validate_chmod(value, span).map_err(|error| LowerError::Instruction {
                error: Box::new(error),
                line,
            })? {
                InstructionChmod::Octal(mode) => Chmod::Octal(mode),
                InstructionChmod::Symbolic(s) => Chmod::Symbolic(s),
            },
        ),
        None => None,
    };

    let mut message = String::from(if cfg.is_add { "ADD" } else { "COPY" });
    if cfg.parents {
        message.push_str(" --parents");
    }
    if let Some(chown) = cfg.chown {
        message.push_str(&format!(" --chown={chown}"));
    }
    if let Some(chmod) = cfg.chmod {
        message.push_str(&format!(" --chmod={chmod}"));
    }

    let text = uppercase_cmd(&process_cmd_env(&lw.lexer, &cfg.origin.code, &st.env));
    let step_name = st.prefix_command(&text, lw.options.multi_platform, true);
    let link = cfg.link && cfg.chmod.is_none();

    // The context vertex for this step: exactly its local source paths.
    let mut local = Vec::new();
    for src in &cfg.files.paths {
        if git_source(src, line)?.is_none() && !is_http_source(src) {
            local.push(src.clone());
        }
    }
    let local_source = match cfg.from {
        Some(v) => Some(v),
        None if !local.is_empty() => Some(context_source(lw, &local, st.lines)?),
        None => None,
    };

    // The base is input 0, except for --link (a copy onto the empty filesystem) and on
    // the empty filesystem itself.
    let has_base = !link && st.vertex.is_some();
    let mut inputs: Vec<VertexId> = if has_base {
        st.vertex.into_iter().collect()
    } else {
        Vec::new()
    };
    let mut actions = Vec::new();
    let plain = |source_input: usize, src: String| FileAction::Copy {
        source_input,
        src,
        dest: dest.clone(),
        owner: owner.clone(),
        chmod: chmod.clone(),
        follow_symlinks: false,
        dir_contents_only: false,
        allow_wildcard: false,
        allow_empty_wildcard: false,
        exclude: cfg.excludes.to_vec(),
        parents: false,
        unpack: false,
        create_dest_path: true,
        mtime: None,
    };

    for src in &cfg.files.paths {
        message.push(' ');
        message.push_str(src);
        if let Some(git) = git_source(src, line)? {
            // The URL's settings win over the flags (resolution checked they agree).
            let keep_git_dir = git.keep_git_dir.or(cfg.keep_git_dir).unwrap_or(false);
            let checksum = if git.checksum.is_empty() {
                cfg.checksum.map(str::to_string)
            } else {
                Some(git.checksum.clone())
            };
            let op = Op::Source(SourceOp::Git {
                url: git.remote.clone(),
                reference: git.reference.clone(),
                keep_git_dir,
                checksum,
            });
            let meta = lw.meta(st, step_name.clone());
            let v = lw.add(op, Vec::new(), meta)?;
            let index = input_index(&mut inputs, v);
            let mut action = plain(index, join(&["/", &git.subdir]));
            if let FileAction::Copy {
                dir_contents_only, ..
            } = &mut action
            {
                // Copying the checkout's root (or subdir) means its contents.
                *dir_contents_only = true;
            }
            actions.push(action);
            continue;
        }
        if is_http_source(src) {
            let filename = url_filename(src);
            let op = Op::Source(SourceOp::Http {
                url: src.clone(),
                checksum: cfg.checksum.map(str::to_string),
                filename: filename.clone(),
                chmod: None,
            });
            let meta = lw.meta(st, step_name.clone());
            let v = lw.add(op, Vec::new(), meta)?;
            let index = input_index(&mut inputs, v);
            let mut action = plain(index, llb_normalize("/", &filename, false));
            if let FileAction::Copy { unpack, .. } = &mut action {
                // Remote archives are not extracted unless asked.
                *unpack = cfg.unpack.unwrap_or(false);
            }
            actions.push(action);
            continue;
        }
        let Some(source) = local_source else {
            continue;
        };
        let index = input_index(&mut inputs, source);
        let src_path = if cfg.parents {
            match src.split_once("/./") {
                Some((parent, pattern)) => {
                    let pattern = normalize_path("/", pattern, false);
                    format!(
                        "{}/./{}",
                        copy_source(parent).trim_end_matches('/'),
                        clean(pattern.trim_start_matches('/'))
                    )
                }
                None => copy_source(src),
            }
        } else {
            copy_source(src)
        };
        actions.push(FileAction::Copy {
            source_input: index,
            src: src_path,
            dest: dest.clone(),
            owner: owner.clone(),
            chmod: chmod.clone(),
            follow_symlinks: true,
            dir_contents_only: true,
            allow_wildcard: true,
            allow_empty_wildcard: true,
            exclude: cfg.excludes.to_vec(),
            parents: cfg.parents,
            unpack: cfg.unpack.unwrap_or(cfg.is_add),
            create_dest_path: true,
            mtime: None,
        });
    }

    for content in &cfg.files.contents {
        message.push_str(" <<");
        message.push_str(&content.path);
        let file = llb_normalize("/", &content.path, false);
        let doc = inline_document(lw, &file, content.data.clone().into_bytes(), 0o644)?;
        let index = input_index(&mut inputs, doc);
        actions.push(plain(index, file));
    }
    message.push(' ');
    message.push_str(&cfg.files.dest);

    let op = Op::File(FileOp { has_base, actions });
    let meta = lw.meta(st, step_name.clone());
    let copied = lw.add(op, inputs.into_iter().map(Input::from).collect(), meta)?;
    let result = match st.vertex {
        Some(base) if link => {
            // BuildKit names the merge after the same step: `[… k/n] LINK COPY …`.
            st.cmd_index = st.cmd_index.saturating_sub(1);
            let name = st.prefix_command(&format!("LINK {text}"), lw.options.multi_platform, true);
            let meta = lw.meta(st, name);
            lw.add(Op::Merge, vec![base.into(), copied.into()], meta)?
        }
        _ => copied,
    };
    st.vertex = Some(result);
    st.image.commit(message, Some(result), true, &lw.created);
    Ok(())
}

/// The file name an ADD URL downloads to: the last element of the URL's (unescaped) path,
/// `__unnamed__` when there is none.
pub fn url_filename(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let Some(path) = percent_decode(path) else {
        return "__unnamed__".to_string();
    };
    let name = base(&path);
    if name == "." || name == "/" {
        "__unnamed__".to_string()
    } else {
        name
    }
}

/// Go's path unescaping: `None` on a malformed `%` escape (Go's `url.Parse` then fails and
/// BuildKit falls back to `__unnamed__`).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_file_names() {
        assert_eq!(url_filename("https://example.com/a/b.tar.gz"), "b.tar.gz");
        assert_eq!(url_filename("https://example.com/a/b%20c?x=1#f"), "b c");
        assert_eq!(url_filename("https://example.com/"), "__unnamed__");
        assert_eq!(url_filename("https://example.com"), "__unnamed__");
        assert_eq!(url_filename("http://h/dir/"), "dir");
        assert_eq!(url_filename("http://h/x%"), "__unnamed__");
        assert_eq!(url_filename("http://h/x%zz"), "__unnamed__");
    }
}
