//! "did you mean …?": BuildKit's `suggest.Search`. The closest option by edit distance wins
//! if that distance is below 3 (the first of equals); an option equal to the value means the
//! value was not the mistake, so nothing is suggested.

/// The option to suggest for `value`, if any.
pub(crate) fn search<'a, I>(value: &str, options: I, case_sensitive: bool) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let value_cmp = if case_sensitive {
        value.to_string()
    } else {
        value.to_lowercase()
    };
    let mut best: Option<String> = None;
    let mut min_distance = 3;
    for option in options {
        let option_cmp = if case_sensitive {
            option.to_string()
        } else {
            option.to_lowercase()
        };
        if option_cmp == value_cmp {
            return None;
        }
        let distance = levenshtein(&value_cmp, &option_cmp);
        if distance < min_distance {
            min_distance = distance;
            best = Some(if case_sensitive {
                option_cmp
            } else {
                match_case(&option_cmp, value)
            });
        }
    }
    best
}

/// The suggestion in the case of the value, when the value is all one case.
fn match_case(candidate: &str, original: &str) -> String {
    if original == original.to_lowercase() {
        candidate.to_lowercase()
    } else if original == original.to_uppercase() {
        candidate.to_uppercase()
    } else {
        candidate.to_string()
    }
}

/// Edit distance in characters (insertions, deletions and substitutions all cost 1).
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("héllo", "hello"), 1);
    }

    #[test]
    fn follows_buildkit() {
        let opts = ["DIR_BINARIES", "DIR_ASSETS", "DIR_CONFIG"];
        assert_eq!(
            search("DIR_ASSET", opts, true).as_deref(),
            Some("DIR_ASSETS")
        );
        assert_eq!(search("PAHT", ["PATH"], true).as_deref(), Some("PATH"));
        assert_eq!(search("version", ["tag"], true), None);
        assert_eq!(
            search("abc", ["abd", "abc"], true),
            None,
            "exact match wins"
        );
        assert_eq!(
            search("runn", ["RUN", "CMD"], false).as_deref(),
            Some("run")
        );
        assert_eq!(search("RUNN", ["RUN"], false).as_deref(), Some("RUN"));
        assert_eq!(search("ab", ["ac", "ad"], true).as_deref(), Some("ac"));
    }
}
