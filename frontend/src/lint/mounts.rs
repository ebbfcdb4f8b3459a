//! `RUN --mount=` values: comma-separated fields with CSV quoting, as BuildKit reads them
//! (`csvvalue.Fields`). Only the split matters here: which `key=value` fields a mount has.

/// Splits a mount spec into its fields, removing CSV quotes (`"a,b"` is one field, `""` in a
/// quoted field is a quote). Malformed quoting is taken as literally as possible.
pub(crate) fn fields(spec: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = spec.chars().peekable();
    let mut at_field_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if at_field_start => {
                at_field_start = false;
                while let Some(q) = chars.next() {
                    if q == '"' {
                        if chars.peek() == Some(&'"') {
                            chars.next();
                            field.push('"');
                        } else {
                            break;
                        }
                    } else {
                        field.push(q);
                    }
                }
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_field_start = true;
            }
            c => {
                at_field_start = false;
                field.push(c);
            }
        }
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    use super::fields;

    #[test]
    fn csv_fields() {
        assert_eq!(
            fields("type=cache,target=/root/.cache"),
            ["type=cache", "target=/root/.cache"]
        );
        assert_eq!(fields(r#""target=/a,b",ro"#), ["target=/a,b", "ro"]);
        assert_eq!(fields(r#""a""b""#), [r#"a"b"#]);
        assert_eq!(fields(""), [""]);
    }
}
