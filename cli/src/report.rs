//! Error and warning rendering: `file:line`, the lines around it with `>>>` on the offending
//! ones (as buildx prints them) and a caret under the column when one is known.

use crate::commands::Source;

/// Lines of context shown before the offending range.
const CONTEXT_LINES: usize = 4;

/// Prints an error that has no location.
pub fn error(err: &anyhow::Error) {
    eprintln!("ERROR: {err:#}");
}

/// Prints a warning with its line.
pub fn warning(src: &Source, message: &str, line: usize) {
    eprintln!("WARNING: {}:{line}: {message}", src.name);
}

/// Prints an error at lines `start..=end` (1-based) of `src`, with a caret at `column`.
pub fn located(src: &Source, message: &str, start: usize, end: usize, column: Option<usize>) {
    eprint!("{}", render(src, message, start, end, column));
}

fn render(src: &Source, message: &str, start: usize, end: usize, column: Option<usize>) -> String {
    let text = String::from_utf8_lossy(&src.bytes);
    let lines: Vec<&str> = text.lines().collect();
    let end = end.max(start);
    let mut out = String::new();
    let at = match column {
        Some(c) => format!("{}:{start}:{c}", src.name),
        None => format!("{}:{start}", src.name),
    };
    out.push_str(&format!("{at}\n--------------------\n"));
    let first = start.saturating_sub(CONTEXT_LINES).max(1);
    let last = end.min(lines.len());
    for n in first..=last {
        let line = lines.get(n - 1).copied().unwrap_or_default();
        let marker = if n >= start && n <= end { ">>>" } else { "   " };
        out.push_str(&format!(" {n:>3} | {marker} {line}\n"));
        if n == start {
            if let Some(c) = column {
                out.push_str(&format!(
                    "     |     {}^\n",
                    " ".repeat(c.saturating_sub(1))
                ));
            }
        }
    }
    out.push_str("--------------------\n");
    out.push_str(&format!("ERROR: {at}: {message}\n"));
    out
}

/// The lines `start..=end` (1-based) of `src` with a few around them, the way BuildKit prints
/// a warning's or a check error's source (`errdefs.Source.Print`): `file:line`, then the
/// lines between rules, `>>>` marking those in range. Empty when the range is not in the file.
pub fn source_block(src: &Source, start: usize, end: usize) -> String {
    let text = String::from_utf8_lossy(&src.bytes);
    let lines: Vec<&str> = text.split('\n').collect();
    if start < 1 || start > lines.len() {
        return String::new();
    }
    let (in_start, in_end) = (start, end.max(start));
    let mut first = start;
    let mut last = in_end.min(lines.len());
    // Two lines of context for a range, four for a single line, before and after as the
    // file allows.
    let pad = if last == first { 4 } else { 2 };
    let mut p = 0;
    while p < pad {
        if first > 1 {
            first -= 1;
            p += 1;
        }
        if last != lines.len() {
            last += 1;
            p += 1;
        }
        p += 1;
    }
    let mut out = format!("{}:{start}\n--------------------\n", src.name);
    for n in first..=last {
        let marker = if n >= in_start && n <= in_end {
            ">>>"
        } else {
            "   "
        };
        let line = lines.get(n - 1).copied().unwrap_or_default();
        out.push_str(&format!(" {n:>3} | {marker} {line}\n"));
    }
    out.push_str("--------------------\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_block_pads_like_buildkit() {
        let src = Source {
            name: "Dockerfile".into(),
            bytes: b"1\n2\n3\n4\n5\n6\n7\n8\n9\n".to_vec(),
        };
        let block = source_block(&src, 5, 5);
        assert!(block.starts_with("Dockerfile:5\n--------------------\n   3 |     3\n"));
        assert!(block.contains("   5 | >>> 5\n"));
        assert!(
            block.ends_with("   7 |     7\n--------------------\n"),
            "{block}"
        );
        let block = source_block(&src, 1, 2);
        assert!(
            block.contains("   1 | >>> 1\n   2 | >>> 2\n   3 |     3\n"),
            "{block}"
        );
        assert!(!block.contains("   4 |"), "{block}");
        assert_eq!(source_block(&src, 99, 99), "");
    }

    #[test]
    fn marks_the_offending_line_with_a_caret() {
        let src = Source {
            name: "Dockerfile".into(),
            bytes: b"FROM a\nRUNN x\n".to_vec(),
        };
        let text = render(
            &src,
            "unknown instruction: RUNN (did you mean RUN?)",
            2,
            2,
            Some(1),
        );
        assert!(text.contains("   2 | >>> RUNN x\n     |     ^\n"), "{text}");
        assert!(text
            .ends_with("ERROR: Dockerfile:2:1: unknown instruction: RUNN (did you mean RUN?)\n"));
    }
}
