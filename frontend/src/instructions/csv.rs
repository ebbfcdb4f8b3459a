//! One CSV record on one line, as `go-csvvalue` reads `--mount` and `--device` values:
//! comma-separated fields, `"…"` quoting with `""` for a literal quote, Go `encoding/csv`
//! error texts.

/// Splits `line` into fields. Errors are `encoding/csv` messages (`EOF` for an empty line).
pub fn fields(line: &str) -> Result<Vec<String>, String> {
    // A trailing newline is tolerated, as by the Go parser.
    let line = line
        .strip_suffix("\r\n")
        .or_else(|| line.strip_suffix('\n'))
        .unwrap_or(line);
    if line.is_empty() {
        return Err("EOF".to_string());
    }
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut pos = 0usize;
    loop {
        if pos >= bytes.len() || bytes[pos] != b'"' {
            // Unquoted field: up to the next comma; a quote inside is an error.
            let end = line[pos..].find(',').map(|i| pos + i);
            let field = &line[pos..end.unwrap_or(line.len())];
            if let Some(j) = field.find('"') {
                return Err(parse_error(pos + j, "bare \" in non-quoted-field"));
            }
            out.push(field.to_string());
            match end {
                Some(e) => {
                    pos = e + 1;
                    continue;
                }
                None => break,
            }
        }
        // Quoted field.
        pos += 1;
        let mut field = String::new();
        loop {
            let Some(i) = line[pos..].find('"') else {
                return Err(parse_error(pos, "extraneous or missing \" in quoted-field"));
            };
            field.push_str(&line[pos..pos + i]);
            pos += i + 1;
            match bytes.get(pos) {
                Some(b'"') => {
                    field.push('"');
                    pos += 1;
                }
                Some(b',') => {
                    pos += 1;
                    out.push(std::mem::take(&mut field));
                    break;
                }
                None => {
                    out.push(std::mem::take(&mut field));
                    return Ok(out);
                }
                Some(_) => {
                    return Err(parse_error(
                        pos - 1,
                        "extraneous or missing \" in quoted-field",
                    ));
                }
            }
        }
    }
    Ok(out)
}

fn parse_error(pos: usize, what: &str) -> String {
    format!("parse error on line 1, column {}: {what}", pos + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_go_csvvalue() {
        assert_eq!(fields("a,b,c").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(fields("a,,").unwrap(), vec!["a", "", ""]);
        assert_eq!(
            fields(r#""type=bind,x",y"#).unwrap(),
            vec!["type=bind,x", "y"]
        );
        assert_eq!(fields(r#""a""b""#).unwrap(), vec![r#"a"b"#]);
        assert_eq!(fields("x\n").unwrap(), vec!["x"]);
        assert_eq!(fields("").unwrap_err(), "EOF");
        assert_eq!(
            fields(r#"a"b"#).unwrap_err(),
            "parse error on line 1, column 2: bare \" in non-quoted-field"
        );
        assert_eq!(
            fields(r#""abc"#).unwrap_err(),
            "parse error on line 1, column 2: extraneous or missing \" in quoted-field"
        );
        assert_eq!(
            fields(r#""a"b"#).unwrap_err(),
            "parse error on line 1, column 3: extraneous or missing \" in quoted-field"
        );
    }
}
