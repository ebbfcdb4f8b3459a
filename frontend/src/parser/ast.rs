//! The untyped Dockerfile AST: one [`Node`] per logical instruction line.
//!
//! This is the shape BuildKit's low-level parser produces (keyword, flags, argument words),
//! plus what it attaches beside the dump: heredocs, the original line, whether the arguments
//! were JSON, and where the instruction sits in the file.

/// Where an instruction sits in its Dockerfile. Lines and columns are 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First physical line of the instruction.
    pub start_line: usize,
    /// Last physical line consumed by it (continuations, swallowed blank/comment lines,
    /// heredoc bodies and terminators included).
    pub end_line: usize,
    /// Column of the keyword's first character on `start_line`.
    pub column: usize,
}

/// One heredoc attached to an instruction (`RUN <<EOF` … `EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// Marker name with quotes removed (`EOF` for `<<"EOF"`).
    pub name: String,
    /// Body: the raw lines between the marker line and the terminator, each with its `\n`
    /// (leading tabs removed when `chomp`).
    pub content: String,
    /// False when the marker was quoted: the body is then not subject to expansion.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from body lines and the terminator.
    pub chomp: bool,
    /// The file descriptor digits before `<<` (0 when absent).
    pub file_descriptor: u32,
}

/// A parser warning (not an error), with the line it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Short text, e.g. `Empty continuation line found in: RUN foo bar`.
    pub short: String,
    /// Longer explanation.
    pub detail: String,
    /// The instruction's span.
    pub span: Span,
}

/// One instruction as parsed: `keyword [flags] args`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The keyword exactly as written (`FROM`, `from`, `Run`).
    pub keyword: String,
    /// Leading `--flag[=value]` words, unquoted, in order.
    pub flags: Vec<String>,
    /// The argument words, split according to the instruction (see `grammar/dockerfile.pest`).
    /// Empty for ONBUILD, whose argument is [`Node::onbuild`].
    pub args: Vec<String>,
    /// ONBUILD's nested instruction.
    pub onbuild: Option<Box<Node>>,
    /// The arguments were a JSON array (exec form).
    pub json: bool,
    /// Heredocs opened on this line, in order.
    pub heredocs: Vec<Heredoc>,
    /// The logical line after continuation joining, keyword included, trimmed.
    pub original: String,
    /// Comment lines directly above the instruction (text after `#`, trimmed).
    pub comments: Vec<String>,
    /// Where it is.
    pub span: Span,
}

impl Node {
    /// Keyword in lower case, the form used for dispatch.
    pub fn command(&self) -> String {
        self.keyword.to_ascii_lowercase()
    }
}

/// Parser directives found at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Directives {
    /// `# syntax=` value.
    pub syntax: Option<(String, Span)>,
    /// `# escape=` value (`\` when absent).
    pub escape: Option<(char, Span)>,
    /// `# check=` value.
    pub check: Option<(String, Span)>,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// Logical instructions in file order.
    pub nodes: Vec<Node>,
    /// Directives at the top of the file.
    pub directives: Directives,
    /// The escape token in force (`\` or `` ` ``).
    pub escape: char,
    /// Warnings such as empty continuation lines.
    pub warnings: Vec<Warning>,
}
