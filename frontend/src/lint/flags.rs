//! Reading an instruction's `--name[=value]` flags from the AST, as BuildKit's `BFlags` sees
//! them (names are case-sensitive). Invalid or unknown flags are the typed layer's business;
//! the checks only read the values they need.

use crate::parser::Node;

/// The values given to `--name=…`, in order.
pub(crate) fn values<'a>(node: &'a Node, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    node.flags.iter().filter_map(move |flag| {
        let (flag_name, value) = flag.strip_prefix("--")?.split_once('=')?;
        (flag_name == name).then_some(value)
    })
}

/// The first value given to `--name=…`.
pub(crate) fn value<'a>(node: &'a Node, name: &'a str) -> Option<&'a str> {
    values(node, name).next()
}
