//! What `docker` prints for people: sizes (`4.26MB`), ages (`2 hours ago`) and
//! tab-aligned tables (Go's tabwriter with docker's settings: minimum cell width 10,
//! padding 3).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Decimal size with three significant digits: `0B`, `512B`, `4.26MB`, `1.2GB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 999.5 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    let decimals = if value >= 99.95 {
        0
    } else if value >= 9.995 {
        1
    } else {
        2
    };
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    format!("{text}{}", UNITS[unit])
}

/// How long ago `then` (Unix seconds) was, as docker words it: `About a minute ago`.
pub fn ago(then: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64;
    format!("{} ago", duration(now.saturating_sub(then).max(0) as u64))
}

/// Docker's human duration: `Less than a second`, `3 seconds`, `About an hour`, `2 weeks`.
pub fn duration(seconds: u64) -> String {
    let minutes = seconds / 60;
    let hours = (seconds as f64 / 3600.0).round() as u64;
    match seconds {
        0 => "Less than a second".to_owned(),
        1 => "1 second".to_owned(),
        s if s < 60 => format!("{s} seconds"),
        _ if minutes == 1 => "About a minute".to_owned(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".to_owned(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

/// Rows aligned as docker aligns them: every column but the last padded to the widest cell
/// plus 3, at least 10.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count() + 3).max(10);
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Unix seconds of an RFC 3339 time, if it parses.
pub fn timestamp(text: Option<&str>) -> Option<i64> {
    strata_oci::config::parse_timestamp(text?)
        .ok()
        .map(|(s, _)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_like_docker() {
        assert_eq!(size(0), "0B");
        assert_eq!(size(999), "999B");
        assert_eq!(size(4_261_000), "4.26MB");
        assert_eq!(size(1_200_000_000), "1.2GB");
        assert_eq!(size(12_340), "12.3kB");
        assert_eq!(size(123_456), "123kB");
        assert_eq!(duration(0), "Less than a second");
        assert_eq!(duration(59), "59 seconds");
        assert_eq!(duration(61), "About a minute");
        assert_eq!(duration(3 * 3600), "3 hours");
        assert_eq!(duration(3 * 86_400), "3 days");
        assert_eq!(duration(20 * 86_400), "2 weeks");
        assert_eq!(duration(400 * 86_400), "13 months");
        assert_eq!(duration(3 * 365 * 86_400), "3 years");
    }

    #[test]
    fn tables_align_like_tabwriter() {
        let rows = vec![
            vec!["REPOSITORY".into(), "TAG".into(), "SIZE".into()],
            vec!["busybox".into(), "latest".into(), "4.26MB".into()],
        ];
        assert_eq!(
            table(&rows),
            "REPOSITORY   TAG       SIZE\nbusybox      latest    4.26MB\n"
        );
    }
}
