//! Signal names and numbers as `moby/sys/signal.ParseSignal` accepts them on Linux, for
//! STOPSIGNAL once expanded.

const NAMES: [(&str, u32); 34] = [
    ("ABRT", 6),
    ("ALRM", 14),
    ("BUS", 7),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("FPE", 8),
    ("HUP", 1),
    ("ILL", 4),
    ("INT", 2),
    ("IO", 29),
    ("IOT", 6),
    ("KILL", 9),
    ("PIPE", 13),
    ("POLL", 29),
    ("PROF", 27),
    ("PWR", 30),
    ("QUIT", 3),
    ("SEGV", 11),
    ("STKFLT", 16),
    ("STOP", 19),
    ("SYS", 31),
    ("TERM", 15),
    ("TRAP", 5),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("USR1", 10),
    ("USR2", 12),
    ("VTALRM", 26),
    ("WINCH", 28),
    ("XCPU", 24),
    ("XFSZ", 25),
];

const SIGRTMIN: i64 = 34;
const SIGRTMAX: i64 = 64;

/// The signal number for `raw` (`9`, `KILL`, `SIGKILL`, `sigterm`, `RTMIN+3`), or `None`.
///
/// Any non-zero integer is accepted, as by Go's `strconv.Atoi` path.
pub fn parse_signal(raw: &str) -> Option<i64> {
    if let Ok(n) = raw.parse::<i64>() {
        return (n != 0).then_some(n);
    }
    let upper = raw.to_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some((_, n)) = NAMES.iter().find(|(k, _)| *k == name) {
        return Some(i64::from(*n));
    }
    if name == "RTMIN" {
        return Some(SIGRTMIN);
    }
    if name == "RTMAX" {
        return Some(SIGRTMAX);
    }
    // The map holds exactly RTMIN+1..RTMIN+15 and RTMAX-14..RTMAX-1 (no leading zeros).
    (1..=15)
        .find_map(|n| (name == format!("RTMIN+{n}")).then_some(SIGRTMIN + n))
        .or_else(|| (1..=14).find_map(|n| (name == format!("RTMAX-{n}")).then_some(SIGRTMAX - n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("SIGKILL"), Some(9));
        assert_eq!(parse_signal("term"), Some(15));
        assert_eq!(parse_signal("RTMIN+3"), Some(37));
        assert_eq!(parse_signal("SIGRTMAX-1"), Some(63));
        assert_eq!(parse_signal("RTMAX"), Some(64));
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("RTMIN+16"), None);
        assert_eq!(parse_signal("RTMIN+01"), None);
        assert_eq!(parse_signal("RTMAX-15"), None);
        assert_eq!(parse_signal("NOPE"), None);
        assert_eq!(parse_signal(""), None);
    }
}
