//! The key/value pairs of ENV and LABEL. The AST gives them as (key, value, delimiter)
//! triples: delimiter `=` for `k=v`, empty for the legacy `ENV k v` form.

use super::{Error, Span};

/// One `key=value` (or legacy `key value`) pair, value not yet expanded (quotes kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The name.
    pub key: String,
    /// The value as written.
    pub value: String,
    /// Legacy space-separated form (`ENV key value`), which the linter flags.
    pub no_delimiter: bool,
}

impl KeyValue {
    /// `key=value`, as BuildKit prints pairs in history entries.
    pub fn display(&self) -> String {
        format!("{}={}", self.key, self.value)
    }
}

/// BuildKit's `parseKvps`.
pub(super) fn parse_pairs(
    args: &[String],
    keyword: &'static str,
    span: Span,
) -> Result<Vec<KeyValue>, Error> {
    if args.is_empty() {
        return Err(Error::AtLeastOneArgument { keyword, span });
    }
    if args.len() % 3 != 0 {
        // The parser never produces this; hand-built nodes can.
        return Err(Error::TooManyArguments { keyword, span });
    }
    args.chunks(3)
        .map(|triple| {
            let [key, value, delimiter] = triple else {
                return Err(Error::TooManyArguments { keyword, span });
            };
            if key.is_empty() {
                return Err(Error::BlankName { keyword, span });
            }
            Ok(KeyValue {
                key: key.clone(),
                value: value.clone(),
                no_delimiter: delimiter.is_empty(),
            })
        })
        .collect()
}
