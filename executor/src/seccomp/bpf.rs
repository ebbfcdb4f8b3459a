//! A classic-BPF compiler for seccomp rule tables, searched by syscall number.
//!
//! Role: [`compile`] turns "these syscalls (some only with these arguments) get `matched`,
//! everything else `mismatch`" into a program for `seccomp(SECCOMP_SET_MODE_FILTER)`.
//!
//! Key decision: a binary search over number ranges, not a list. `seccompiler` emits four
//! instructions per syscall tested one after another (1608 for Docker's profile); the kernel
//! checks, converts and JIT-compiles the whole program at every sandbox start (6 % of a
//! trivial RUN's CPU) and runs it on every syscall the build makes. Here consecutive allowed
//! numbers share one range, the ranges are found in ~log2(n) comparisons, and the program is
//! about a tenth as long. The semantics are `seccompiler`'s (same architecture check, same
//! 64-bit argument comparisons, rules of one syscall tried in order), which a test checks
//! instruction by instruction against it on every syscall number.

use std::collections::BTreeMap;

use seccompiler::sock_filter;

/// `seccomp_data.nr`.
const NR: u32 = 0;
/// `seccomp_data.arch`.
const ARCH: u32 = 4;
/// `seccomp_data.args[0]`; each argument is 8 bytes, low half first (little endian).
const ARGS: u32 = 16;

const LD_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS
const AND_K: u16 = 0x04 | 0x50; // BPF_ALU | BPF_AND | BPF_K
const JA: u16 = 0x05; // BPF_JMP | BPF_JA
const JEQ: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const JGT: u16 = 0x05 | 0x20; // BPF_JMP | BPF_JGT | BPF_K
const JGE: u16 = 0x05 | 0x30; // BPF_JMP | BPF_JGE | BPF_K
const RET: u16 = 0x06; // BPF_RET | BPF_K

/// A 64-bit comparison of one argument, as `seccompiler`'s `Qword` conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq(u64),
    Lt(u64),
    Gt(u64),
    /// `(arg & mask) == (value & mask)`.
    MaskedEq {
        mask: u64,
        value: u64,
    },
}

/// A condition: argument `index` (0–5) compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cond {
    pub index: u8,
    pub cmp: Cmp,
}

/// For one syscall: empty = always `matched`; else `matched` when all conditions of any
/// one rule hold.
pub(crate) type Rules = Vec<Vec<Cond>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Label(usize);

/// An instruction before jump offsets are known.
#[derive(Debug, Clone, Copy)]
enum Ins {
    Ld(u32),
    And(u32),
    Jump {
        op: u16,
        k: u32,
        yes: Label,
        no: Label,
    },
    Ja(Label),
    Ret(u32),
    Mark(Label),
}

/// Compiles `table` (syscall number → rules) for `audit_arch`; other architectures kill
/// the process.
pub(crate) fn compile(
    audit_arch: u32,
    table: &BTreeMap<u32, Rules>,
    matched: u32,
    mismatch: u32,
) -> Vec<sock_filter> {
    let mut asm = Asm::default();
    let arch_ok = asm.label();
    let kill = asm.label();
    asm.push(Ins::Ld(ARCH));
    asm.push(Ins::Jump {
        op: JEQ,
        k: audit_arch,
        yes: arch_ok,
        no: kill,
    });
    asm.push(Ins::Mark(kill));
    asm.push(Ins::Ret(libc::SECCOMP_RET_KILL_PROCESS));
    asm.push(Ins::Mark(arch_ok));
    asm.push(Ins::Ld(NR));
    let ranges = ranges(table);
    let reject = asm.label();
    let accept = asm.label();
    asm.search(&ranges, 0, u32::MAX, accept, reject);
    asm.push(Ins::Mark(accept));
    asm.push(Ins::Ret(matched));
    asm.push(Ins::Mark(reject));
    asm.push(Ins::Ret(mismatch));
    asm.assemble()
}

/// A run of numbers with one outcome: all `matched`, or one number with rules.
#[derive(Debug)]
struct Range<'a> {
    lo: u32,
    hi: u32,
    rules: Option<&'a Rules>,
}

fn ranges(table: &BTreeMap<u32, Rules>) -> Vec<Range<'_>> {
    let mut out: Vec<Range<'_>> = Vec::new();
    for (&nr, rules) in table {
        if rules.is_empty() {
            if let Some(last) = out.last_mut() {
                if last.rules.is_none() && last.hi.checked_add(1) == Some(nr) {
                    last.hi = nr;
                    continue;
                }
            }
            out.push(Range {
                lo: nr,
                hi: nr,
                rules: None,
            });
        } else {
            out.push(Range {
                lo: nr,
                hi: nr,
                rules: Some(rules),
            });
        }
    }
    out
}

#[derive(Default)]
struct Asm {
    code: Vec<Ins>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }

    fn push(&mut self, ins: Ins) {
        self.code.push(ins);
    }

    /// Code that, with the syscall number loaded and known to lie in `lo..=hi`, ends in
    /// `accept` / `reject` as `ranges` (sorted, inside `lo..=hi`) say.
    fn search(&mut self, ranges: &[Range<'_>], lo: u32, hi: u32, accept: Label, reject: Label) {
        match ranges {
            [] => self.push(Ins::Ja(reject)),
            [only] => {
                if only.lo > lo {
                    self.require(JGE, only.lo, true, reject);
                }
                if only.hi < hi {
                    self.require(JGT, only.hi, false, reject);
                }
                match only.rules {
                    None => self.push(Ins::Ja(accept)),
                    Some(rules) => self.arguments(rules, accept, reject),
                }
            }
            _ => {
                let mid = ranges.len() / 2;
                let split = ranges[mid].lo;
                let (below, above) = (self.label(), self.label());
                self.jump(JGE, split, above, below);
                self.push(Ins::Mark(below));
                self.search(&ranges[..mid], lo, split - 1, accept, reject);
                self.push(Ins::Mark(above));
                self.search(&ranges[mid..], split, hi, accept, reject);
            }
        }
    }

    /// Rules tried in order: the first whose conditions all hold accepts. Leaves the
    /// syscall number no longer loaded (every path ends in a jump).
    fn arguments(&mut self, rules: &Rules, accept: Label, reject: Label) {
        for rule in rules {
            let next = self.label();
            for cond in rule {
                let holds = self.label();
                self.condition(*cond, holds, next);
                self.push(Ins::Mark(holds));
            }
            self.push(Ins::Ja(accept));
            self.push(Ins::Mark(next));
        }
        self.push(Ins::Ja(reject));
    }

    /// Unsigned 64-bit comparison of an argument, as two 32-bit halves.
    fn condition(&mut self, cond: Cond, holds: Label, fails: Label) {
        let low_at = ARGS + 8 * u32::from(cond.index);
        let at = (low_at + 4, low_at);
        match cond.cmp {
            Cmp::Eq(v) => self.equal(at, None, v, holds, fails),
            Cmp::MaskedEq { mask, value } => self.equal(at, Some(mask), value & mask, holds, fails),
            Cmp::Gt(v) => self.order(at, v, (holds, fails), JGT),
            Cmp::Lt(v) => self.order(at, v, (fails, holds), JGE),
        }
    }

    /// `(arg & mask) == value`, half by half (no mask: plain equality).
    fn equal(
        &mut self,
        (high_at, low_at): (u32, u32),
        mask: Option<u64>,
        value: u64,
        holds: Label,
        fails: Label,
    ) {
        let load = |asm: &mut Asm, at: u32, shift: u32| {
            asm.push(Ins::Ld(at));
            if let Some(mask) = mask {
                asm.push(Ins::And((mask >> shift) as u32));
            }
        };
        load(self, high_at, 32);
        self.require(JEQ, (value >> 32) as u32, true, fails);
        load(self, low_at, 0);
        self.jump(JEQ, value as u32, holds, fails);
    }

    /// Orders the argument against `v`: to `above` when greater (high half greater, or equal
    /// and the low half passes `low_op` — `JGT` for "greater", `JGE` for "not less"), else to
    /// `below`.
    fn order(
        &mut self,
        (high_at, low_at): (u32, u32),
        v: u64,
        (above, below): (Label, Label),
        low_op: u16,
    ) {
        let (vh, vl) = ((v >> 32) as u32, v as u32);
        self.push(Ins::Ld(high_at));
        self.require(JGT, vh, false, above);
        self.require(JEQ, vh, true, below);
        self.push(Ins::Ld(low_at));
        self.jump(low_op, vl, above, below);
    }

    /// Goes on with the next instruction when `op k` is `holds`, else jumps to `other`.
    fn require(&mut self, op: u16, k: u32, holds: bool, other: Label) {
        let next = self.label();
        let (yes, no) = if holds { (next, other) } else { (other, next) };
        self.jump(op, k, yes, no);
        self.push(Ins::Mark(next));
    }

    fn jump(&mut self, op: u16, k: u32, yes: Label, no: Label) {
        self.push(Ins::Jump { op, k, yes, no });
    }

    /// Resolves labels into offsets. A conditional jump reaches at most 255 instructions
    /// ahead; a farther target goes through an unconditional jump (32-bit offset) placed
    /// right after it, and the layout is redone until every jump fits.
    fn assemble(&self) -> Vec<sock_filter> {
        // Which conditional jumps (by index in `code`) need a trampoline for yes / no.
        let mut far: Vec<(bool, bool)> = vec![(false, false); self.code.len()];
        loop {
            // Position of every instruction and label with the current trampolines.
            let mut at = vec![0usize; self.code.len()];
            let mut label_at = vec![usize::MAX; self.labels];
            let mut pc = 0;
            for (i, ins) in self.code.iter().enumerate() {
                at[i] = pc;
                match ins {
                    Ins::Mark(l) => label_at[l.0] = pc,
                    Ins::Jump { .. } => pc += 1 + usize::from(far[i].0) + usize::from(far[i].1),
                    _ => pc += 1,
                }
            }
            let mut grew = false;
            for (i, ins) in self.code.iter().enumerate() {
                if let Ins::Jump { yes, no, .. } = ins {
                    let next = at[i] + 1 + usize::from(far[i].0) + usize::from(far[i].1);
                    let (fy, fn_) = far[i];
                    let need_yes = label_at[yes.0] - next > 255;
                    let need_no = label_at[no.0] - next > 255;
                    if need_yes && !fy || need_no && !fn_ {
                        far[i] = (fy || need_yes, fn_ || need_no);
                        grew = true;
                    }
                }
            }
            if grew {
                continue;
            }
            let mut out = Vec::with_capacity(pc);
            for (i, ins) in self.code.iter().enumerate() {
                let stmt = |code, k| sock_filter {
                    code,
                    jt: 0,
                    jf: 0,
                    k,
                };
                match *ins {
                    Ins::Mark(_) => {}
                    Ins::Ld(k) => out.push(stmt(LD_ABS, k)),
                    Ins::And(k) => out.push(stmt(AND_K, k)),
                    Ins::Ret(k) => out.push(stmt(RET, k)),
                    Ins::Ja(l) => {
                        let from = out.len() + 1;
                        out.push(stmt(JA, (label_at[l.0] - from) as u32));
                    }
                    Ins::Jump { op, k, yes, no } => {
                        let (fy, fn_) = far[i];
                        let base = out.len() + 1;
                        // Trampolines, if any, sit right after the jump: yes first, then no.
                        let yes_tramp = base;
                        let no_tramp = base + usize::from(fy);
                        let next = base + usize::from(fy) + usize::from(fn_);
                        let jt = if fy { yes_tramp } else { label_at[yes.0] } - base;
                        let jf = if fn_ { no_tramp } else { label_at[no.0] } - base;
                        out.push(sock_filter {
                            code: op,
                            jt: jt as u8,
                            jf: jf as u8,
                            k,
                        });
                        if fy {
                            out.push(stmt(JA, (label_at[yes.0] - (yes_tramp + 1)) as u32));
                        }
                        if fn_ {
                            out.push(stmt(JA, (label_at[no.0] - (no_tramp + 1)) as u32));
                        }
                        debug_assert_eq!(out.len(), next);
                    }
                }
            }
            return out;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs a classic BPF program (the instructions `seccompiler` and this module emit) on
    /// a `seccomp_data`; panics on anything else.
    pub(crate) fn run(program: &[sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let ins = &program[pc];
            pc += 1;
            let k = ins.k;
            match ins.code {
                LD_ABS => {
                    let at = k as usize;
                    acc = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
                }
                AND_K => acc &= k,
                JA => pc += k as usize,
                JEQ | JGT | JGE => {
                    let yes = match ins.code {
                        JEQ => acc == k,
                        JGT => acc > k,
                        _ => acc >= k,
                    };
                    pc += usize::from(if yes { ins.jt } else { ins.jf });
                }
                RET => return k,
                other => panic!("instruction {other:#x} at {}", pc - 1),
            }
        }
    }

    #[test]
    fn far_targets_go_through_trampolines() {
        // Syscall 5 allowed for 200 (arg0, arg1) pairs: the rules alone are ~1600
        // instructions, so the search's jumps over them cannot fit in 8 bits.
        let pairs: Rules = (0..200u64)
            .map(|i| {
                vec![
                    Cond {
                        index: 0,
                        cmp: Cmp::Eq(i),
                    },
                    Cond {
                        index: 1,
                        cmp: Cmp::Eq(i << 33),
                    },
                ]
            })
            .collect();
        let table: BTreeMap<u32, Rules> = [(1, vec![]), (2, vec![]), (5, pairs), (400, vec![])]
            .into_iter()
            .collect();
        let program = compile(7, &table, 100, 200);
        assert!(program.len() > 1000, "{}", program.len());
        let at = |nr, a0, a1| run(&program, nr, 7, [a0, a1, 0, 0, 0, 0]);
        assert_eq!(at(1, 0, 0), 100);
        assert_eq!(at(2, 0, 0), 100);
        assert_eq!(at(3, 0, 0), 200);
        assert_eq!(at(0, 0, 0), 200);
        assert_eq!(at(400, 0, 0), 100);
        assert_eq!(at(401, 0, 0), 200);
        assert_eq!(at(u32::MAX, 0, 0), 200);
        for i in [0u64, 1, 100, 199] {
            assert_eq!(at(5, i, i << 33), 100, "pair {i}");
            if i > 0 {
                assert_eq!(at(5, i, i << 32), 200, "pair {i}, wrong half");
            }
        }
        assert_eq!(at(5, 200, 200 << 33), 200);
        assert_eq!(run(&program, 1, 8, [0; 6]), libc::SECCOMP_RET_KILL_PROCESS);
    }

    #[test]
    fn comparisons_are_unsigned_64_bit() {
        let rule = |cmp| -> BTreeMap<u32, Rules> {
            [(9, vec![vec![Cond { index: 2, cmp }]])]
                .into_iter()
                .collect()
        };
        let check = |cmp, value: u64| {
            let program = compile(7, &rule(cmp), 1, 0);
            run(&program, 9, 7, [0, 0, value, 0, 0, 0]) == 1
        };
        let v = (3u64 << 32) | 10;
        for x in [
            0,
            9,
            10,
            11,
            3 << 32,
            (3 << 32) | 9,
            v,
            v + 1,
            4 << 32,
            u64::MAX,
        ] {
            assert_eq!(check(Cmp::Eq(v), x), x == v, "eq {x:#x}");
            assert_eq!(check(Cmp::Lt(v), x), x < v, "lt {x:#x}");
            assert_eq!(check(Cmp::Gt(v), x), x > v, "gt {x:#x}");
            let mask = 0xffff_0000_0000_00ff;
            assert_eq!(
                check(Cmp::MaskedEq { mask, value: v }, x),
                x & mask == v & mask,
                "masked {x:#x}"
            );
        }
    }
}
