//! "did you mean …?" suggestions, following BuildKit's rule: the closest option by edit
//! distance, if that distance is below 3; an exact match means the value was not the
//! problem, so nothing is suggested.

/// The closest option to `value`, as BuildKit's `suggest.Search` picks it.
///
/// Case-insensitive search compares lower-cased strings and returns the option in the
/// value's casing when the value is all lower or all upper case (else lower case). On a tie
/// the first option in `options` wins (BuildKit iterates a Go map, so its tie order is
/// unspecified; ours is stable).
pub fn closest<'a, I>(value: &str, options: I, case_sensitive: bool) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let wanted = if case_sensitive {
        value.to_string()
    } else {
        value.to_lowercase()
    };
    let mut best: Option<String> = None;
    let mut best_distance = 3;
    for option in options {
        let candidate = if case_sensitive {
            option.to_string()
        } else {
            option.to_lowercase()
        };
        if candidate == wanted {
            return None;
        }
        let distance = levenshtein(&wanted, &candidate);
        if distance < best_distance {
            best_distance = distance;
            best = Some(if case_sensitive {
                candidate
            } else {
                match_case(&candidate, value)
            });
        }
    }
    best
}

/// The text BuildKit appends to a message when it has a suggestion.
pub fn suffix(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean {s}?)"),
        None => String::new(),
    }
}

fn match_case(candidate: &str, original: &str) -> String {
    if original == original.to_lowercase() {
        candidate.to_lowercase()
    } else if original == original.to_uppercase() {
        candidate.to_uppercase()
    } else {
        candidate.to_string()
    }
}

/// Edit distance with unit costs for insertion, deletion and substitution, over chars.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("mont", "mount"), 1);
    }

    #[test]
    fn suggestions_follow_buildkit() {
        let names = ["RUN", "ENTRYPOINT", "COPY"];
        assert_eq!(
            closest("FNTRYPOINT", names, false).as_deref(),
            Some("ENTRYPOINT")
        );
        assert_eq!(closest("runn", names, false).as_deref(), Some("run"));
        assert_eq!(closest("Runn", names, false).as_deref(), Some("run"));
        assert_eq!(closest("FOO", names, false), None);
        assert_eq!(closest("run", names, false), None);
        assert_eq!(
            closest("typ", ["type", "from"], true).as_deref(),
            Some("type")
        );
        assert_eq!(suffix(&Some("x".into())), " (did you mean x?)");
    }
}
