//! `--chmod`: the mode a copy gives what it writes, octal or symbolic, as BuildKit applies
//! it.
//!
//! Main type: [`ModeChange`]. Octal (`0755`) sets the permission, set-id and sticky bits
//! outright. Symbolic (`u+x,go-w`, `a+X`, `g=u`) follows chmod(1) as BSD's `setmode`
//! defines it with a zero umask — BuildKit's parser is a port of it: clauses apply in order
//! to each entry's *source* mode; `X` adds execute when the source mode has any execute bit
//! or the entry is a directory; `s` and `t` are ignored for `o` alone; `u`, `g`, `o` on the
//! right copy another class's bits.
//!
//! BuildKit applies the mode to every file and directory a copy writes (never to symlinks)
//! and gives directories a copy creates for the destination path the octal mode (0755 for
//! a symbolic one).

use strata_solver::op::Chmod;

use super::error::FileError;

const SET_UID: u32 = 0o4000;
const SET_GID: u32 = 0o2000;
const STICKY: u32 = 0o1000;
const USER: u32 = 0o700;
const GROUP: u32 = 0o070;
const OTHER: u32 = 0o007;
/// What `a` (or no class) covers; the sticky bit is set only through `t`.
const STANDARD: u32 = SET_UID | SET_GID | USER | GROUP | OTHER;

/// A parsed `--chmod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ModeChange {
    /// Set exactly these bits (`0o7777` at most).
    Octal(u32),
    /// chmod(1) clauses, applied in order.
    Symbolic(Vec<Step>),
}

/// One step of a symbolic mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Clear these bits.
    Clear(u32),
    /// Set these bits.
    Set(u32),
    /// Set these bits if the original mode has an execute bit or is a directory.
    SetIfExecutable(u32),
    /// Copy class `from`'s permission bits (shift 6, 3 or 0) onto the target classes.
    Copy {
        /// Shift of the source class.
        from: u32,
        /// Shifts of the target classes.
        to: [bool; 3],
        /// `+`, `-` or `=`.
        op: u8,
    },
}

impl ModeChange {
    /// Parses the op's mode.
    pub fn parse(chmod: &Chmod) -> Result<ModeChange, FileError> {
        match chmod {
            Chmod::Octal(mode) if *mode <= 0o7777 => Ok(ModeChange::Octal(*mode)),
            Chmod::Octal(mode) => Err(FileError::InvalidChmod {
                mode: format!("{mode:o}"),
            }),
            Chmod::Symbolic(text) => {
                parse_symbolic(text).ok_or_else(|| FileError::InvalidChmod { mode: text.clone() })
            }
        }
    }

    /// The mode of an entry whose source mode is `mode` (`0o7777` bits).
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            ModeChange::Octal(bits) => *bits & 0o7777,
            ModeChange::Symbolic(steps) => {
                let original = mode & 0o7777;
                let mut m = original;
                for step in steps {
                    match *step {
                        Step::Clear(bits) => m &= !bits,
                        Step::Set(bits) => m |= bits,
                        Step::SetIfExecutable(bits) => {
                            if original & 0o111 != 0 || is_dir {
                                m |= bits;
                            }
                        }
                        Step::Copy { from, to, op } => {
                            let value = (m >> from) & 0o7;
                            for (shift, on) in [6u32, 3, 0].into_iter().zip(to) {
                                if !on {
                                    continue;
                                }
                                match op {
                                    b'+' => m |= value << shift,
                                    b'-' => m &= !(value << shift),
                                    _ => m = (m & !(0o7 << shift)) | (value << shift),
                                }
                            }
                        }
                    }
                }
                m
            }
        }
    }

    /// The mode of directories created on the way to the destination.
    pub fn parent_dir_mode(change: Option<&ModeChange>) -> u32 {
        match change {
            Some(ModeChange::Octal(bits)) => bits & 0o777,
            _ => 0o755,
        }
    }
}

/// BSD `setmode` grammar: `[ugoa]*([-+=]([rwxXst]*|[ugo]))+` clauses joined by commas; a
/// leading digit makes the whole string octal.
fn parse_symbolic(text: &str) -> Option<ModeChange> {
    let s = text.as_bytes();
    if s.is_empty() {
        return None;
    }
    if s[0].is_ascii_digit() {
        // Go's ParseInt(s, 8, 16).
        let value = i16::from_str_radix(text, 8).ok()?;
        let value = u32::try_from(value).ok()?;
        return (value & !0o7777 == 0).then_some(ModeChange::Octal(value));
    }
    let mut steps = Vec::new();
    let mut i = 0;
    loop {
        let mut who = 0u32;
        loop {
            match s.get(i)? {
                b'a' => who |= STANDARD,
                b'u' => who |= SET_UID | USER,
                b'g' => who |= SET_GID | GROUP,
                b'o' => who |= OTHER,
                _ => break,
            }
            i += 1;
        }
        // One or more `op perms` groups for this class list.
        loop {
            let op = *s.get(i)?;
            if !matches!(op, b'+' | b'-' | b'=') {
                return None;
            }
            i += 1;
            let mut who = who;
            let mut perm = 0u32;
            let mut exec_if = 0u32;
            let mut equal_done = false;
            while let Some(&c) = s.get(i) {
                match c {
                    b'r' => perm |= 0o444,
                    b'w' => perm |= 0o222,
                    b'x' => perm |= 0o111,
                    b'X' => {
                        if op == b'+' {
                            exec_if = 0o111;
                        }
                    }
                    b's' => {
                        if who == 0 || who & !OTHER != 0 {
                            perm |= SET_UID | SET_GID;
                        }
                    }
                    b't' => {
                        if who == 0 || who & !OTHER != 0 {
                            who |= STICKY;
                            perm |= STICKY;
                        }
                    }
                    b'u' | b'g' | b'o' => {
                        if perm != 0 {
                            push_op(&mut steps, op, who, perm);
                            perm = 0;
                        }
                        if op == b'=' {
                            equal_done = true;
                        }
                        if exec_if != 0 {
                            steps.push(Step::SetIfExecutable(masked(who, exec_if)));
                            exec_if = 0;
                        }
                        steps.push(copy_step(c, who, op));
                    }
                    _ => break,
                }
                i += 1;
            }
            if perm != 0 || (op == b'=' && !equal_done) {
                push_op(&mut steps, op, who, perm);
            }
            if exec_if != 0 {
                steps.push(Step::SetIfExecutable(masked(who, exec_if)));
            }
            match s.get(i) {
                None => return Some(ModeChange::Symbolic(steps)),
                Some(b',') => {
                    i += 1;
                    break;
                }
                Some(_) => continue,
            }
        }
    }
}

/// `who & bits`, or all of `bits` when no class was named (umask 0).
fn masked(who: u32, bits: u32) -> u32 {
    if who == 0 {
        bits
    } else {
        who & bits
    }
}

fn push_op(steps: &mut Vec<Step>, op: u8, who: u32, perm: u32) {
    match op {
        b'+' => steps.push(Step::Set(masked(who, perm))),
        b'-' => steps.push(Step::Clear(masked(who, perm))),
        _ => {
            steps.push(Step::Clear(if who == 0 { STANDARD } else { who }));
            steps.push(Step::Set(masked(who, perm)));
        }
    }
}

fn copy_step(class: u8, who: u32, op: u8) -> Step {
    let from = match class {
        b'u' => 6,
        b'g' => 3,
        _ => 0,
    };
    let to = if who == 0 {
        [true; 3]
    } else {
        [who & 0o400 != 0, who & 0o040 != 0, who & 0o004 != 0]
    };
    Step::Copy { from, to, op }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(text: &str, mode: u32, dir: bool) -> u32 {
        ModeChange::parse(&Chmod::Symbolic(text.into()))
            .unwrap()
            .apply(mode, dir)
    }

    #[test]
    fn chmod_1_semantics() {
        assert_eq!(sym("go-w", 0o666, false), 0o644);
        assert_eq!(sym("u=rw,g=r,o=r", 0o777, false), 0o644);
        assert_eq!(sym("a+X", 0o644, false), 0o644);
        assert_eq!(sym("a+X", 0o744, false), 0o755);
        assert_eq!(sym("a+X", 0o600, true), 0o711);
        assert_eq!(sym("+x", 0o644, false), 0o755);
        assert_eq!(sym("=r", 0o4777, false), 0o444);
        assert_eq!(sym("u+s", 0o755, false), 0o4755);
        assert_eq!(sym("o+s", 0o755, false), 0o755);
        assert_eq!(sym("+t", 0o755, true), 0o1755);
        assert_eq!(sym("g=u", 0o740, false), 0o770);
        assert_eq!(sym("go=u-w", 0o755, false), 0o755);
        assert_eq!(sym("go=", 0o777, false), 0o700);
        assert_eq!(sym("u+x-w", 0o644, false), 0o544);
        assert_eq!(sym("755", 0o600, false), 0o755);
        for bad in ["", "u", "z+x", "u+x,", "u+xz", "8", "17777"] {
            assert!(
                ModeChange::parse(&Chmod::Symbolic(bad.into())).is_err(),
                "{bad}"
            );
        }
    }
}
