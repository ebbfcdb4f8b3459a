//! BuildKit's AST dump (`parser/testfiles/*/result`): the format `strata parse --dump` prints.

use super::ast::{Dockerfile, Node};
use std::fmt::Write;

/// Renders the whole file: one `(keyword [flags] "args"...)` line per instruction.
pub fn dump(file: &Dockerfile) -> String {
    let mut out = String::new();
    for node in &file.nodes {
        out.push('(');
        out.push_str(&dump_node(node));
        out.push_str(")\n");
    }
    // BuildKit trims the root dump and its test adds one newline back.
    let mut s = out.trim().to_string();
    s.push('\n');
    s
}

fn dump_node(node: &Node) -> String {
    let mut s = node.keyword.to_lowercase();
    if !node.flags.is_empty() {
        s.push_str(" [");
        for (i, f) in node.flags.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(&go_quote(f));
        }
        s.push(']');
    }
    if let Some(inner) = &node.onbuild {
        s.push(' ');
        // The nested node is dumped as a child of an argument node: "(" + dump + ")\n", trimmed.
        let nested = format!("({})\n", dump_node(inner));
        s.push_str(nested.trim());
    }
    for arg in &node.args {
        s.push(' ');
        s.push_str(&go_quote(arg));
    }
    s.trim().to_string()
}

/// Quotes a string the way Go's `strconv.Quote` does, so dumps match BuildKit's byte for byte.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0B}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7F}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and U+0020.
///
/// Without a general-category table we treat as non-printable exactly the classes that are
/// not printable in Go: controls, separators other than the ASCII space, format characters,
/// private-use code points and non-characters. Unassigned code points (Go: not printable) are
/// the one gap: they print as themselves here.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    let format = matches!(u,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
        | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F);
    let private = matches!(u, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD);
    let nonchar = (0xFDD0..=0xFDEF).contains(&u) || (u & 0xFFFE) == 0xFFFE;
    !(format || private || nonchar)
}

#[cfg(test)]
mod tests {
    use super::go_quote;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\u{0}\t\u{7f}"), r#""\x00\t\x7f""#);
        assert_eq!(go_quote("♥é"), "\"♥é\"");
        assert_eq!(
            go_quote("\u{85}\u{a0}\u{2028}\u{feff}"),
            r#""\u0085\u00a0\u2028\ufeff""#
        );
        assert_eq!(go_quote("\u{10FFFD}"), r#""\U0010fffd""#);
    }
}
