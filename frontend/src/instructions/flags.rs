//! BuildKit's instruction flag parser (`bflag.go`): each instruction declares the flags it
//! accepts, then the `--name[=value]` words the parser extracted are checked against them.
//!
//! Only the `--name=value` form exists: the AST parser ends the flag list at the first word
//! not starting with `--`, so `--from stage` is the flag `--from` (missing a value) followed by
//! arguments. Unknown flags get a "did you mean" suggestion among the declared ones.

use super::suggest;

/// What went wrong while checking an instruction's flags. Texts are BuildKit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// A flag word that does not start with `--`.
    #[error("arg should start with -- : {arg}")]
    NotAFlag {
        /// The word as given.
        arg: String,
    },
    /// A flag the instruction does not declare.
    #[error("unknown flag: {flag}{}", suggest::suffix(suggestion))]
    Unknown {
        /// `--name` as written.
        flag: String,
        /// Closest declared flag name (without `--`).
        suggestion: Option<String>,
    },
    /// A single-valued flag given twice.
    #[error("duplicate flag specified: {flag}")]
    Duplicate {
        /// `--name` as written.
        flag: String,
    },
    /// `--name` without `=value` for a string flag, or `--name=` for a bool flag.
    #[error("missing a value on flag: {flag}")]
    MissingValue {
        /// `--name` as written.
        flag: String,
    },
    /// A bool flag whose value is not true/false.
    #[error("expecting boolean value for flag {flag}, not: {value}")]
    NotBoolean {
        /// `--name` as written.
        flag: String,
        /// The value given.
        value: String,
    },
}

/// The kind of value a declared flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    /// `--name`, `--name=true|false` (case-insensitive).
    Bool,
    /// `--name=value`, at most once.
    String,
    /// `--name=value`, any number of times.
    Strings,
}

/// Handle to a declared flag, returned by the `add_*` methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagId(usize);

#[derive(Debug, Clone)]
struct Declared {
    name: &'static str,
    kind: FlagKind,
    value: String,
    values: Vec<String>,
    used: bool,
}

/// The flags of one instruction: the words given, and the flags declared for it.
#[derive(Debug, Clone)]
pub struct BFlags {
    args: Vec<String>,
    declared: Vec<Declared>,
    used_order: Vec<&'static str>,
}

impl BFlags {
    /// Flags as extracted by the parser (`--name=value` words, unquoted).
    pub fn new(args: &[String]) -> Self {
        BFlags {
            args: args.to_vec(),
            declared: Vec::new(),
            used_order: Vec::new(),
        }
    }

    fn add(&mut self, name: &'static str, kind: FlagKind, value: &str) -> FlagId {
        // Declarations are fixed per instruction in this module, so a duplicate is a
        // programming error; keep the first declaration rather than panic.
        if let Some(i) = self.declared.iter().position(|d| d.name == name) {
            return FlagId(i);
        }
        self.declared.push(Declared {
            name,
            kind,
            value: value.to_string(),
            values: Vec::new(),
            used: false,
        });
        FlagId(self.declared.len() - 1)
    }

    /// Declares a bool flag with its default.
    pub fn add_bool(&mut self, name: &'static str, default: bool) -> FlagId {
        self.add(name, FlagKind::Bool, if default { "true" } else { "false" })
    }

    /// Declares a single-valued string flag with its default.
    pub fn add_string(&mut self, name: &'static str, default: &str) -> FlagId {
        self.add(name, FlagKind::String, default)
    }

    /// Declares a repeatable string flag.
    pub fn add_strings(&mut self, name: &'static str) -> FlagId {
        self.add(name, FlagKind::Strings, "")
    }

    /// Checks every given flag against the declarations and records the values.
    pub fn parse(&mut self) -> Result<(), FlagError> {
        let args = std::mem::take(&mut self.args);
        let result = self.parse_args(&args);
        self.args = args;
        result
    }

    fn parse_args(&mut self, args: &[String]) -> Result<(), FlagError> {
        for arg in args {
            if arg == "--" {
                // POSIX: `--` ends the options.
                return Ok(());
            }
            let Some(rest) = arg.strip_prefix("--") else {
                return Err(FlagError::NotAFlag { arg: arg.clone() });
            };
            let (name, value) = match rest.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (rest, None),
            };
            let flag = format!("--{name}");
            let Some(index) = self.declared.iter().position(|d| d.name == name) else {
                let suggestion = suggest::closest(name, self.declared.iter().map(|d| d.name), true);
                return Err(FlagError::Unknown { flag, suggestion });
            };
            let declared = &mut self.declared[index];
            if declared.used && declared.kind != FlagKind::Strings {
                return Err(FlagError::Duplicate { flag });
            }
            if !declared.used {
                self.used_order.push(declared.name);
            }
            declared.used = true;
            match declared.kind {
                FlagKind::Bool => {
                    if value == Some("") {
                        return Err(FlagError::MissingValue { flag });
                    }
                    let v = value.unwrap_or("");
                    declared.value = match v.to_lowercase().as_str() {
                        "true" | "" => "true".to_string(),
                        "false" => "false".to_string(),
                        _ => {
                            return Err(FlagError::NotBoolean {
                                flag,
                                value: v.to_string(),
                            })
                        }
                    };
                }
                FlagKind::String => match value {
                    Some(v) => declared.value = v.to_string(),
                    None => return Err(FlagError::MissingValue { flag }),
                },
                FlagKind::Strings => match value {
                    Some(v) => declared.values.push(v.to_string()),
                    None => return Err(FlagError::MissingValue { flag }),
                },
            }
        }
        Ok(())
    }

    fn get(&self, id: FlagId) -> Option<&Declared> {
        self.declared.get(id.0)
    }

    /// Value of a string flag (its default when not given).
    pub fn string(&self, id: FlagId) -> String {
        self.get(id).map(|d| d.value.clone()).unwrap_or_default()
    }

    /// Value of a string flag, `None` when empty (BuildKit treats `""` as "not set").
    pub fn non_empty(&self, id: FlagId) -> Option<String> {
        Some(self.string(id)).filter(|v| !v.is_empty())
    }

    /// Value of a bool flag.
    pub fn bool(&self, id: FlagId) -> bool {
        self.get(id).is_some_and(|d| d.value == "true")
    }

    /// Values of a repeatable flag, in order.
    pub fn strings(&self, id: FlagId) -> Vec<String> {
        self.get(id).map(|d| d.values.clone()).unwrap_or_default()
    }

    /// Whether the flag was given.
    pub fn is_used(&self, id: FlagId) -> bool {
        self.get(id).is_some_and(|d| d.used)
    }

    /// Names of the flags given, in order of first use.
    pub fn used(&self) -> Vec<String> {
        self.used_order.iter().map(|s| s.to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(words: &[&str]) -> BFlags {
        BFlags::new(&words.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn values_and_defaults() {
        let mut f = flags(&[
            "--str1=BVal",
            "--bool1",
            "--bool2=false",
            "--many=a",
            "--many=b",
        ]);
        let s1 = f.add_string("str1", "HI");
        let s2 = f.add_string("str2", "def");
        let b1 = f.add_bool("bool1", false);
        let b2 = f.add_bool("bool2", true);
        let many = f.add_strings("many");
        f.parse().unwrap();
        assert_eq!(f.string(s1), "BVal");
        assert_eq!(f.string(s2), "def");
        assert!(f.bool(b1));
        assert!(!f.bool(b2));
        assert_eq!(f.strings(many), vec!["a", "b"]);
        assert!(f.is_used(s1) && !f.is_used(s2));
        assert_eq!(f.used(), vec!["str1", "bool1", "bool2", "many"]);
    }

    #[test]
    fn errors_match_buildkit() {
        let cases: &[(&[&str], &str)] = &[
            (&["--str1"], "missing a value on flag: --str1"),
            (&["--bool1="], "missing a value on flag: --bool1"),
            (
                &["--bool1=yes"],
                "expecting boolean value for flag --bool1, not: yes",
            ),
            (
                &["--str1=a", "--str1=b"],
                "duplicate flag specified: --str1",
            ),
            (&["--bool1", "--bool1"], "duplicate flag specified: --bool1"),
            (&["str1=a"], "arg should start with -- : str1=a"),
            (&["--sttr1=a"], "unknown flag: --sttr1 (did you mean str1?)"),
            (&["--zzzzzz"], "unknown flag: --zzzzzz"),
        ];
        for (words, want) in cases {
            let mut f = flags(words);
            f.add_string("str1", "");
            f.add_bool("bool1", false);
            let err = f.parse().unwrap_err();
            assert_eq!(err.to_string(), *want, "{words:?}");
        }
    }

    #[test]
    fn double_dash_ends_flags_and_bool_case() {
        let mut f = flags(&["--b=TRUE", "--", "--nope"]);
        let b = f.add_bool("b", false);
        f.parse().unwrap();
        assert!(f.bool(b));
    }
}
