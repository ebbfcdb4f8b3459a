//! Where the expander looks variables up.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

/// A read-only set of variables the expander can look up.
///
/// Names are compared exactly (case-sensitive, as BuildKit does on Linux).
/// A variable set to the empty string is *set*: `get` returns `Some("")`,
/// which matters for `${v-x}` versus `${v:-x}` and for the matched-name sets.
pub trait Env {
    /// The value of `name`, or `None` when it is unset.
    fn get(&self, name: &str) -> Option<&str>;
}

impl<E: Env + ?Sized> Env for &E {
    fn get(&self, name: &str) -> Option<&str> {
        (**self).get(name)
    }
}

impl<S: BuildHasher> Env for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

/// A list of `KEY=VALUE` entries, searched from the end so that the last
/// definition of a name wins. An entry without `=` sets the name to `""`.
/// Each lookup is a linear scan: fine for the handful of ARG/ENV entries of a
/// stage; use [`EnvList`] for large environments.
impl<S: AsRef<str>> Env for [S] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter().rev().find_map(|entry| {
            let (key, value) = split_entry(entry.as_ref());
            (key == name).then_some(value)
        })
    }
}

impl<S: AsRef<str>> Env for Vec<S> {
    fn get(&self, name: &str) -> Option<&str> {
        Env::get(self.as_slice(), name)
    }
}

impl<S: AsRef<str>, const N: usize> Env for [S; N] {
    fn get(&self, name: &str) -> Option<&str> {
        Env::get(self.as_slice(), name)
    }
}

/// Splits `KEY=VALUE` at the first `=`; a missing `=` means an empty value
/// (Go's `strings.Cut` as used by BuildKit's `EnvsFromSlice`).
fn split_entry(entry: &str) -> (&str, &str) {
    entry.split_once('=').unwrap_or((entry, ""))
}

/// An environment built from `KEY=VALUE` entries with hashed lookups, the
/// counterpart of BuildKit's `EnvsFromSlice`.
///
/// Later entries for a name replace earlier ones; [`EnvList::keys`] keeps the
/// order in which names were first defined (for "did you mean" suggestions).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvList {
    entries: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl EnvList {
    /// An empty environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds an environment from `KEY=VALUE` entries (last definition wins,
    /// an entry without `=` sets the name to `""`).
    pub fn from_entries<I>(entries: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut env = Self::new();
        for entry in entries {
            let (key, value) = split_entry(entry.as_ref());
            env.set(key, value);
        }
        env
    }

    /// Sets `key` to `value`, replacing any earlier value.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        match self.index.get(&key) {
            Some(&i) => self.entries[i].1 = value,
            None => {
                self.index.insert(key.clone(), self.entries.len());
                self.entries.push((key, value));
            }
        }
    }

    /// The defined names, in order of first definition.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.iter().map(|(key, _)| key.as_str())
    }

    /// The number of defined names.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no name is defined.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Env for EnvList {
    fn get(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|&i| self.entries[i].1.as_str())
    }
}

impl<S: AsRef<str>> FromIterator<S> for EnvList {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Self::from_entries(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_lookup_last_wins_and_missing_equals_is_empty() {
        let env = ["foo=bar", "car=hat", "car=bike", "bare", "eq=a=b"];
        // Inherent slice `get` takes an index, hence the qualified calls.
        assert_eq!(Env::get(&env, "foo"), Some("bar"));
        assert_eq!(Env::get(&env, "car"), Some("bike"));
        assert_eq!(Env::get(&env, "bare"), Some(""));
        assert_eq!(Env::get(&env, "eq"), Some("a=b"));
        assert_eq!(Env::get(&env, "FOO"), None, "names are case-sensitive");
        assert_eq!(Env::get(&env, ""), None);
    }

    #[test]
    fn env_list_matches_slice_semantics() {
        let entries = ["foo=bar", "car=hat", "car=bike", "bare"];
        let list = EnvList::from_entries(entries);
        for name in ["foo", "car", "bare", "nope"] {
            assert_eq!(Env::get(&list, name), Env::get(&entries, name), "{name}");
        }
        assert_eq!(list.keys().collect::<Vec<_>>(), ["foo", "car", "bare"]);
        assert_eq!(list.len(), 3);
    }

    #[test]
    fn maps_are_environments() {
        let mut map = HashMap::new();
        map.insert("A".to_owned(), String::new());
        assert_eq!(Env::get(&map, "A"), Some(""));
        let tree: BTreeMap<String, String> = [("B".to_owned(), "x".to_owned())].into();
        assert_eq!(Env::get(&&tree, "B"), Some("x"));
    }
}
