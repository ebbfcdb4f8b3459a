//! Recognising a heredoc marker word (`<<EOF`, `<<-"EOF"`, `3<<EOF`) among the arguments of
//! ADD/COPY/RUN, the way BuildKit's `parser.ParseHeredoc` does after the AST is built.
//!
//! The AST already carries the bodies ([`super::Heredoc`]); the typed layer still has to tell
//! which argument words are markers (COPY sources, a heredoc destination to reject).

/// A word that opens a heredoc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeredocMarker {
    /// Name with quotes removed.
    pub name: String,
    /// False when part of the name was quoted: the body is then taken literally.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the body.
    pub chomp: bool,
    /// File descriptor digits before `<<` (0 when absent).
    pub file_descriptor: u32,
}

/// Reads `word` as a heredoc marker: `^(\d*)<<(-?)\s*([^<]*)$` whose name part is exactly one
/// shell word. Anything else is `None`.
pub fn marker(word: &str) -> Option<HeredocMarker> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let rest = word[digits..].strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.trim_start_matches(is_regex_space);
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let (words, quoted) = unquote_words(rest);
    if words.len() != 1 {
        return None;
    }
    let file_descriptor = word[..digits].parse().unwrap_or(0);
    words.into_iter().next().map(|name| HeredocMarker {
        name,
        expand: !quoted,
        chomp,
        file_descriptor,
    })
}

/// Go regexp `\s`: ASCII whitespace.
fn is_regex_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0C' | '\r')
}

/// Shell word split with quote removal (no variable expansion: unset variables stay as
/// written, as with BuildKit's `SkipUnsetEnv`). Also reports whether any quote was removed.
fn unquote_words(s: &str) -> (Vec<String>, bool) {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                quoted = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    current.push(c);
                }
            }
            '"' => {
                in_word = true;
                quoted = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' if matches!(chars.peek(), Some('"' | '\\' | '$')) => {
                            if let Some(next) = chars.next() {
                                current.push(next);
                            }
                        }
                        c => current.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            c => {
                in_word = true;
                current.push(c);
            }
        }
    }
    if in_word {
        words.push(current);
    }
    (words, quoted)
}

/// BuildKit's `ChompHeredocContent`: removes leading tabs from every line.
pub fn chomp(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|line| line.trim_start_matches('\t'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers() {
        let m = marker("<<EOF").unwrap();
        assert_eq!(
            (m.name.as_str(), m.expand, m.chomp, m.file_descriptor),
            ("EOF", true, false, 0)
        );
        let m = marker("<<-'EOF'").unwrap();
        assert_eq!((m.name.as_str(), m.expand, m.chomp), ("EOF", false, true));
        let m = marker("3<<\"E\"OF").unwrap();
        assert_eq!(
            (m.name.as_str(), m.expand, m.file_descriptor),
            ("EOF", false, 3)
        );
        assert_eq!(marker("<<").map(|m| m.name), None);
        assert_eq!(marker("/bar"), None);
        assert_eq!(marker("a<<EOF"), None);
        assert_eq!(marker("<<EOF<<X"), None);
        assert_eq!(marker("<<'a b'").map(|m| m.name).as_deref(), Some("a b"));
    }

    #[test]
    fn chomps_tabs() {
        assert_eq!(chomp("\t\ta\n\tb\nc"), "a\nb\nc");
    }
}
