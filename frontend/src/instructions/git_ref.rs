//! Telling a Git source from an HTTP URL or a context path, as BuildKit's
//! `dfgitutil.ParseGitRef` does for ADD/COPY sources.
//!
//! Git sources: `git://…`, `ssh://…`, `user@host:path` (scp-like), `http(s)://…` whose path
//! ends in `.git`, and the deprecated `github.com/…`. A `#ref:subdir` fragment and
//! `?ref=…&tag=…&branch=…&subdir=…&checksum=…&keep-git-dir&submodules=…` queries are read.

use super::go_format::{go_quote, parse_go_bool};

/// A parsed Git source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GitRef {
    /// The repository URL without fragment and query.
    pub remote: String,
    /// Last path element without `.git`.
    pub short_name: String,
    /// Commit, tag or branch (`refs/tags/…`, `refs/heads/…` when given by query).
    pub reference: String,
    /// Expected commit (`checksum=` / `commit=`).
    pub checksum: String,
    /// Directory inside the repository.
    pub subdir: String,
    /// The deprecated `github.com/…` form.
    pub indistinguishable_from_local: bool,
    /// `http://` or `git://`.
    pub unencrypted_tcp: bool,
    /// `keep-git-dir=` query.
    pub keep_git_dir: Option<bool>,
    /// `submodules=` query.
    pub submodules: Option<bool>,
    /// `mtime=` query (`checkout` or `commit`).
    pub mtime: String,
    /// `fetch-by-commit` query.
    pub fetch_by_commit: bool,
}

/// Why a string is not (or not a valid) Git source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRefError {
    /// True when the string is a Git URL with a bad query: an error to report. False when
    /// it simply is not a Git source.
    pub is_git: bool,
    /// BuildKit's message.
    pub message: String,
}

fn not_git(message: &str) -> GitRefError {
    GitRefError {
        is_git: false,
        message: message.to_string(),
    }
}

/// Parses `source` as a Git reference.
pub fn parse_git_ref(source: &str) -> Result<GitRef, GitRefError> {
    let mut git = GitRef::default();
    let url = if source.starts_with("./") || source.starts_with("../") {
        return Err(not_git("invalid argument"));
    } else if source.starts_with("github.com/") {
        git.indistinguishable_from_local = true;
        let mut url = parse_url(&format!("https://{source}")).map_err(|m| not_git(&m))?;
        url.scheme = "https".to_string();
        url
    } else {
        let url = parse_git_url(source)?;
        if matches!(url.scheme.as_str(), "http" | "git") {
            git.unencrypted_tcp = true;
        }
        if matches!(url.scheme.as_str(), "http" | "https") && !url.path.ends_with(".git") {
            return Err(not_git("invalid argument"));
        }
        url
    };

    git.remote = url.remote.clone();
    if git.indistinguishable_from_local {
        if let Some((_, rest)) = git.remote.split_once("://") {
            git.remote = rest.to_string();
        }
    }
    if !url.fragment.is_empty() {
        let (reference, subdir) = url.fragment.split_once(':').unwrap_or((&url.fragment, ""));
        git.reference = reference.to_string();
        git.subdir = clean_subdir(subdir);
    }
    let last = git.remote.rsplit('/').next().unwrap_or("");
    git.short_name = last.strip_suffix(".git").unwrap_or(last).to_string();
    load_query(&mut git, &url.query).map_err(|message| GitRefError {
        is_git: true,
        message,
    })?;
    Ok(git)
}

/// Whether BuildKit would treat `source` as a Git source (`isGitSource`).
pub fn is_git_source(source: &str) -> bool {
    parse_git_ref(source).is_ok()
}

/// Whether BuildKit would download `source` over HTTP (`isHTTPSource`).
pub fn is_http_source(source: &str) -> bool {
    (source.starts_with("http://") || source.starts_with("https://")) && !is_git_source(source)
}

#[derive(Debug, Default)]
struct Url {
    scheme: String,
    path: String,
    query: Vec<(String, String)>,
    fragment: String,
    remote: String,
}

/// `gitutil.ParseURL`: a supported `scheme://` URL, or an scp-like `user@host:path`.
fn parse_git_url(remote: &str) -> Result<Url, GitRefError> {
    let scheme_len = remote.bytes().take_while(u8::is_ascii_alphanumeric).count();
    if scheme_len > 0 && remote[scheme_len..].starts_with("://") {
        let scheme = remote[..scheme_len].to_lowercase();
        if !matches!(scheme.as_str(), "http" | "https" | "ssh" | "git") {
            return Err(not_git(&format!("{scheme}: invalid protocol")));
        }
        return parse_url(remote).map_err(|m| not_git(&m));
    }
    parse_scp_url(remote).ok_or_else(|| not_git("unknown protocol"))
}

/// `^([a-zA-Z0-9-_]+)@([a-zA-Z0-9-.]+):(.*?)(?:\?(.*?))?(?:#(.*))?$`.
fn parse_scp_url(raw: &str) -> Option<Url> {
    let (user, rest) = raw.split_once('@')?;
    if user.is_empty()
        || !user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    let (host, rest) = rest.split_once(':')?;
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return None;
    }
    let (before_fragment, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (path, raw_query) = before_fragment
        .split_once('?')
        .unwrap_or((before_fragment, ""));
    let query = if raw_query.is_empty() {
        Vec::new()
    } else {
        parse_query(raw_query).ok()?
    };
    Some(Url {
        scheme: "ssh".to_string(),
        path: path.to_string(),
        query,
        fragment: fragment.to_string(),
        remote: format!("{user}@{host}:{path}"),
    })
}

/// Enough of Go's `url.Parse` for `scheme://authority/path?query#fragment`.
fn parse_url(raw: &str) -> Result<Url, String> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(format!(
            "parse {}: net/url: invalid control character in URL",
            go_quote(raw)
        ));
    }
    let (scheme, rest) = raw.split_once("://").unwrap_or(("", raw));
    let (before_fragment, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (location, raw_query) = before_fragment
        .split_once('?')
        .unwrap_or((before_fragment, ""));
    let path_start = location.find('/').unwrap_or(location.len());
    let (authority, path) = location.split_at(path_start);
    let host = authority.rsplit('@').next().unwrap_or("");
    if let Some((_, port)) = host.rsplit_once(':') {
        if !host.ends_with(']') && !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "parse {}: invalid port {} after host",
                go_quote(raw),
                go_quote(&format!(":{port}"))
            ));
        }
    }
    Ok(Url {
        scheme: scheme.to_lowercase(),
        path: percent_decode(path).unwrap_or_else(|| path.to_string()),
        // `url.Query()` drops malformed pairs rather than failing.
        query: parse_query_lenient(raw_query),
        fragment: percent_decode(fragment).unwrap_or_else(|| fragment.to_string()),
        remote: format!("{scheme}://{location}"),
    })
}

fn parse_query(raw: &str) -> Result<Vec<(String, String)>, ()> {
    let mut out = Vec::new();
    for pair in raw.split('&') {
        if pair.is_empty() {
            continue;
        }
        if pair.contains(';') {
            return Err(());
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.push((query_decode(k).ok_or(())?, query_decode(v).ok_or(())?));
    }
    Ok(out)
}

fn parse_query_lenient(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|pair| !pair.is_empty() && !pair.contains(';'))
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((query_decode(k)?, query_decode(v)?))
        })
        .collect()
}

fn query_decode(s: &str) -> Option<String> {
    percent_decode(&s.replace('+', " "))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `path.Join("/", subdir)` without the leading slash.
fn clean_subdir(subdir: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in subdir.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// BuildKit's `GitRef.loadQuery`.
fn load_query(git: &mut GitRef, query: &[(String, String)]) -> Result<(), String> {
    let mut tag = String::new();
    let mut branch = String::new();
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in query {
        if seen.contains(&key.as_str()) {
            return Err(format!("query {} has multiple values", go_quote(key)));
        }
        seen.push(key);
        let flag_like = matches!(
            key.as_str(),
            "submodules" | "keep-git-dir" | "fetch-by-commit"
        );
        if value.is_empty() && !flag_like {
            return Err(format!("query {} has no value", go_quote(key)));
        }
        let boolean = |what: &str| -> Result<bool, String> {
            if value.is_empty() {
                return Ok(true);
            }
            parse_go_bool(value).ok_or_else(|| format!("invalid {what} value: {}", go_quote(value)))
        };
        match key.as_str() {
            "ref" => {
                if !git.reference.is_empty() && git.reference != *value {
                    return Err(format!(
                        "ref conflicts: {} vs {}",
                        go_quote(&git.reference),
                        go_quote(value)
                    ));
                }
                git.reference = value.clone();
            }
            "tag" => tag = value.clone(),
            "branch" => branch = value.clone(),
            "subdir" => {
                if !git.subdir.is_empty() && git.subdir != *value {
                    return Err(format!(
                        "subdir conflicts: {} vs {}",
                        go_quote(&git.subdir),
                        go_quote(value)
                    ));
                }
                git.subdir = value.clone();
            }
            "checksum" | "commit" => git.checksum = value.clone(),
            "keep-git-dir" => git.keep_git_dir = Some(boolean("keep-git-dir")?),
            "submodules" => git.submodules = Some(boolean("submodules")?),
            "fetch-by-commit" => git.fetch_by_commit = boolean("fetch-by-commit")?,
            "mtime" => match value.as_str() {
                "checkout" | "commit" => git.mtime = value.clone(),
                _ => {
                    return Err(format!(
                        "invalid mtime value: {} (must be \"checkout\" or \"commit\")",
                        go_quote(value)
                    ))
                }
            },
            _ => return Err(format!("unexpected query {}", go_quote(key))),
        }
    }
    if !tag.is_empty() {
        if !tag.starts_with("refs/tags/") {
            tag = format!("refs/tags/{tag}");
        }
        if !git.reference.is_empty() && git.reference != tag {
            return Err(format!(
                "ref conflicts: {} vs {}",
                go_quote(&git.reference),
                go_quote(&tag)
            ));
        }
        git.reference = tag.clone();
    }
    if !branch.is_empty() {
        if !tag.is_empty() {
            return Err("branch conflicts with tag".to_string());
        }
        if !branch.starts_with("refs/heads/") {
            branch = format!("refs/heads/{branch}");
        }
        if !git.reference.is_empty() && git.reference != branch {
            return Err(format!(
                "ref conflicts: {} vs {}",
                go_quote(&git.reference),
                go_quote(&branch)
            ));
        }
        git.reference = branch;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert!(is_git_source("https://github.com/moby/buildkit.git"));
        assert!(is_git_source(
            "https://github.com/moby/buildkit.git#v0.10.1:docs"
        ));
        assert!(is_git_source("git@github.com:moby/buildkit.git"));
        assert!(is_git_source("git://example.com/x"));
        assert!(is_git_source("ssh://git@example.com/x"));
        assert!(is_git_source("github.com/moby/buildkit"));
        assert!(!is_git_source("https://example.com/file.tar.gz"));
        assert!(!is_git_source("foo"));
        assert!(!is_git_source("./x"));
        assert!(!is_git_source("/abs/path"));
        assert!(is_http_source("https://example.com/file.tar.gz"));
        assert!(!is_http_source("https://github.com/moby/buildkit.git"));
        assert!(!is_http_source("foo"));
    }

    #[test]
    fn fragments_and_queries() {
        let g = parse_git_ref("https://github.com/foo/bar.git#baz/qux:quux/quuz").unwrap();
        assert_eq!(
            (
                g.remote.as_str(),
                g.short_name.as_str(),
                g.reference.as_str(),
                g.subdir.as_str()
            ),
            (
                "https://github.com/foo/bar.git",
                "bar",
                "baz/qux",
                "quux/quuz"
            )
        );
        let g = parse_git_ref("https://github.com/foo/bar.git?tag=v1&keep-git-dir").unwrap();
        assert_eq!(g.reference, "refs/tags/v1");
        assert_eq!(g.keep_git_dir, Some(true));
        let e = parse_git_ref("https://github.com/foo/bar.git?nope=1").unwrap_err();
        assert!(e.is_git);
        assert_eq!(e.message, "unexpected query \"nope\"");
        let e = parse_git_ref("https://github.com/foo/bar.git?tag=a&branch=b").unwrap_err();
        assert_eq!(e.message, "branch conflicts with tag");
        let g = parse_git_ref("github.com/moby/buildkit").unwrap();
        assert!(g.indistinguishable_from_local);
        assert_eq!(g.remote, "github.com/moby/buildkit");
        assert!(!parse_git_ref("ftp://example.com/x.git").unwrap_err().is_git);
    }
}
