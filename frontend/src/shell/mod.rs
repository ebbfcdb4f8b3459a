//! Shell-word expansion of Dockerfile arguments (ARG, ENV, LABEL, COPY, ADD,
//! WORKDIR, USER, EXPOSE, FROM, …): `$VAR`, `${VAR…}` forms, quotes and
//! escapes, exactly as BuildKit's `frontend/dockerfile/shell` package does.
//!
//! Main types: [`Lexer`] (the escape character and BuildKit's option flags,
//! with the three entry points), [`Env`] (where variables come from; also
//! implemented for maps and `KEY=VALUE` slices, and by [`EnvList`]),
//! [`Expansion`] (a result with the names looked up, for the UndefinedVar
//! lint) and [`ShellError`].
//!
//! Key decision: the engine mirrors the structure of BuildKit's recursive
//! scanner rather than a cleaner grammar, because conformance lives in its
//! corner cases: which error wins, where a nested word ends, what
//! `process_words` splits. That includes one BuildKit quirk, reproduced on
//! purpose: a nested `${…}` word in `process_words` discards the text of the
//! word being built before it (`a${x:-b}` gives `["b"]`). Glob patterns run
//! on a small Pike VM with Go's leftmost-first semantics instead of a regex
//! engine. The one deliberate divergence is [`MAX_NESTING`].

mod charclass;
mod env;
mod error;
mod lexer;
mod pattern;

use std::collections::BTreeSet;

pub use env::{Env, EnvList};
pub use error::ShellError;

use lexer::{Captures, Expander, Splitter};

/// How deeply `${…}` words may nest (`${a:-${b:-${c}}}` is 2 deep) before
/// [`ShellError::TooDeep`]. BuildKit has no limit (Go grows its stack); this
/// one keeps pathological input from overflowing ours. Real Dockerfiles nest
/// two or three levels; 128 levels take well under 1 MiB of stack even in a
/// debug build (a spawned thread has 2 MiB).
pub const MAX_NESTING: usize = 128;

/// Expands variables in Dockerfile words, like BuildKit's `shell.Lex`.
///
/// Cheap to copy; the options are builder methods:
///
/// ```
/// use strata_frontend::shell::Lexer;
///
/// let env = ["NAME=world"];
/// let lexer = Lexer::new('\\');
/// assert_eq!(lexer.process_word("hello ${NAME:-you}", &env).unwrap(), "hello world");
/// assert_eq!(lexer.process_words("a 'b c' $NAME", &env).unwrap(), ["a", "b c", "world"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_process_quotes: bool,
    skip_unset_env: bool,
}

impl Default for Lexer {
    /// A lexer with the default escape character `\`.
    fn default() -> Self {
        Self::new('\\')
    }
}

impl Lexer {
    /// A lexer using `escape` as the escape character: `\` by default, or
    /// the one set by a Dockerfile's `# escape=` directive (`` ` ``).
    pub const fn new(escape: char) -> Self {
        Self {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// The escape character.
    pub const fn escape(&self) -> char {
        self.escape
    }

    /// Keep quote characters in the output (BuildKit's `RawQuotes`); quoted
    /// text is still protected from expansion and splitting.
    #[must_use]
    pub const fn raw_quotes(mut self, on: bool) -> Self {
        self.raw_quotes = on;
        self
    }

    /// Keep escape characters in the output at the top level of the word
    /// (BuildKit's `RawEscapes`). Words inside `${v:-…}` still lose theirs.
    #[must_use]
    pub const fn raw_escapes(mut self, on: bool) -> Self {
        self.raw_escapes = on;
        self
    }

    /// Treat `'` and `"` as ordinary characters (BuildKit's
    /// `SkipProcessQuotes`).
    #[must_use]
    pub const fn skip_process_quotes(mut self, on: bool) -> Self {
        self.skip_process_quotes = on;
        self
    }

    /// Leave references to unset variables as written — `$X`, `${X}`,
    /// `${X:-word}` (its word expanded), `${X/p/r}` — instead of expanding
    /// them (BuildKit's `SkipUnsetEnv`). Also disables `${X?msg}` errors and
    /// rejections of unknown `:` operators for unset variables.
    #[must_use]
    pub const fn skip_unset_env(mut self, on: bool) -> Self {
        self.skip_unset_env = on;
        self
    }

    /// Expands `word` into one string: quotes removed, whitespace kept, no
    /// splitting. Unset variables expand to nothing.
    pub fn process_word<E: Env + ?Sized>(&self, word: &str, env: &E) -> Result<String, ShellError> {
        Expander::new(self, word, env).run()
    }

    /// Expands `word` and splits the result into words on whitespace that
    /// was neither quoted nor escaped; whitespace coming from an unquoted
    /// variable splits too. Empty quoted strings make no word.
    pub fn process_words<E: Env + ?Sized>(
        &self,
        word: &str,
        env: &E,
    ) -> Result<Vec<String>, ShellError> {
        let mut expander = Expander::new(self, word, env);
        expander.splitter = Some(Splitter::default());
        expander.run()?;
        Ok(expander.splitter.take().unwrap_or_default().finish())
    }

    /// Like [`Lexer::process_word`], also returning which variable names
    /// were looked up and whether they were set (even to `""`).
    pub fn process_word_with_matches<E: Env + ?Sized>(
        &self,
        word: &str,
        env: &E,
    ) -> Result<Expansion, ShellError> {
        let mut expander = Expander::new(self, word, env);
        expander.captures = Some(Captures::default());
        let value = expander.run()?;
        let captures = expander.captures.take().unwrap_or_default();
        Ok(Expansion {
            value,
            matched: captures.matched,
            unmatched: captures.unmatched,
        })
    }
}

/// The result of [`Lexer::process_word_with_matches`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The expanded word.
    pub value: String,
    /// Names that were looked up and set (possibly to the empty string).
    pub matched: BTreeSet<String>,
    /// Names that were looked up and unset, including positional and special
    /// parameters such as `1` or `@`, which are never set.
    pub unmatched: BTreeSet<String>,
}
