//! Compiling a `SeccompPlan` into one classic-BPF program (layout in the
//! module comment of `seccomp`).

use std::collections::BTreeMap;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

use super::plan::{Abi, AbiPlan, Cond, Group, Match, Op, SeccompPlan, X32_BIT};
use crate::error::{Error, Result};

/// The kernel's limit on a filter's length (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// Action for a call from an ABI the profile does not cover.
pub const BAD_ARCH_ACTION: u32 = libc::SECCOMP_RET_KILL_PROCESS;

const LD_W_ABS: u16 = 0x20;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGT_K: u16 = 0x25;
const JMP_JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;

/// Stand-ins given to seccompiler for "this group's action" and "not this
/// group, go on"; replaced after compilation. Its output, once the arch
/// check is cut off, returns nothing else, so the values cannot collide
/// with anything.
const TAG_MATCH: SeccompAction = SeccompAction::Trace(1);
const TAG_NEXT: SeccompAction = SeccompAction::Trace(2);
/// Instructions of seccompiler's own arch check at the head of a program.
const SECCOMPILER_ARCH_CHECK: usize = 3;

/// A filter ready to install: the program and the seccomp(2) flags.
#[derive(Debug, Clone)]
pub struct CompiledFilter {
    pub(super) program: Vec<sock_filter>,
    pub(super) flags: u32,
    pub(super) listener: bool,
}

impl CompiledFilter {
    pub fn instructions(&self) -> &[sock_filter] {
        &self.program
    }
    /// seccomp(2) flags, SECCOMP_FILTER_FLAG_NEW_LISTENER included when the
    /// filter has NOTIFY rules.
    pub fn flags(&self) -> u32 {
        self.flags
    }
    pub fn has_listener(&self) -> bool {
        self.listener
    }
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

pub fn compile(plan: &SeccompPlan) -> Result<CompiledFilter> {
    let mut flags = plan.flags;
    if plan.notify {
        flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32;
        if flags & libc::SECCOMP_FILTER_FLAG_TSYNC as u32 != 0 {
            // The kernel refuses TSYNC with a listener unless a sync
            // failure reports ESRCH instead of a thread id (which would be
            // indistinguishable from the listener fd).
            flags |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH as u32;
        }
    } else if flags & libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u32 != 0 {
        // Only meaningful for a listener, and the kernel rejects it without one.
        log::debug!(
            "seccomp: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV without SCMP_ACT_NOTIFY ignored"
        );
        flags &= !(libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u32);
    }

    let mut native = None;
    let mut x86 = None;
    let mut x32 = None;
    for a in &plan.abis {
        let body = abi_body(a, plan.default_action)?;
        match a.abi {
            Abi::X86_64 => native = Some(body),
            Abi::X86 => x86 = Some(body),
            Abi::X32 => x32 = Some(body),
        }
    }
    let native = native.ok_or_else(|| Error::msg("seccomp: no native ABI in the plan"))?;

    // Head: dispatch on the audit arch. Long jumps (JA, 32-bit offsets)
    // because the blocks are longer than a conditional jump can reach.
    let mut p: Vec<sock_filter> = Vec::with_capacity(
        native.len() + x86.as_ref().map_or(0, Vec::len) + x32.as_ref().map_or(0, Vec::len) + 16,
    );
    p.push(stmt(LD_W_ABS, OFF_ARCH));
    p.push(jump(JMP_JEQ_K, AUDIT_ARCH_X86_64, 0, 1));
    let ja_native = p.len();
    p.push(stmt(JMP_JA, 0));
    let mut ja_x86 = None;
    if x86.is_some() {
        p.push(jump(JMP_JEQ_K, AUDIT_ARCH_I386, 0, 1));
        ja_x86 = Some(p.len());
        p.push(stmt(JMP_JA, 0));
    }
    p.push(stmt(RET_K, BAD_ARCH_ACTION));

    // The native block starts by telling x32 calls (x32 bit set) apart;
    // nr == -1 (a tracer skipping a call) stays native, as in libseccomp.
    patch_ja(&mut p, ja_native)?;
    p.push(stmt(LD_W_ABS, OFF_NR));
    p.push(jump(JMP_JSET_K, X32_BIT, 0, 2));
    p.push(jump(JMP_JEQ_K, u32::MAX, 1, 0));
    let ja_x32 = p.len();
    match x32 {
        Some(_) => p.push(stmt(JMP_JA, 0)),
        None => p.push(stmt(RET_K, BAD_ARCH_ACTION)),
    }
    p.extend(native);
    if let Some(body) = x32 {
        patch_ja(&mut p, ja_x32)?;
        p.extend(body);
    }
    if let (Some(body), Some(at)) = (x86, ja_x86) {
        patch_ja(&mut p, at)?;
        p.extend(body);
    }

    if p.len() > MAX_INSNS {
        return Err(Error::config(
            "linux.seccomp",
            format!(
                "the profile compiles to {} BPF instructions, more than the kernel's limit of {MAX_INSNS}",
                p.len()
            ),
        ));
    }
    Ok(CompiledFilter {
        program: p,
        flags,
        listener: plan.notify,
    })
}

/// Point the JA at `at` to the end of the program as it is now.
fn patch_ja(p: &mut [sock_filter], at: usize) -> Result<()> {
    let off = u32::try_from(p.len() - at - 1)
        .map_err(|_| Error::msg("seccomp: program too long for a jump"))?;
    p[at].k = off;
    Ok(())
}

/// One ABI: ENOSYS rule, then each action group, then the default.
fn abi_body(a: &AbiPlan, default_action: u32) -> Result<Vec<sock_filter>> {
    let mut out = Vec::new();
    if let Some(max) = a.enosys_above {
        out.push(stmt(LD_W_ABS, OFF_NR));
        out.push(jump(JMP_JGT_K, max, 0, 1));
        out.push(stmt(RET_K, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32));
    }
    for g in &a.groups {
        group_code(g, a.abi, &mut out)?;
    }
    out.push(stmt(RET_K, default_action));
    Ok(out)
}

/// A group returns its action for its calls and falls through to the next
/// instruction after it for every other call.
fn group_code(g: &Group, abi: Abi, out: &mut Vec<sock_filter>) -> Result<()> {
    let always: Vec<u32> = g
        .syscalls
        .iter()
        .filter(|(_, m)| matches!(m, Match::Always))
        .map(|(nr, _)| *nr)
        .collect();
    // Argument-free calls: one compare each, all jumping to a shared return.
    // A conditional jump reaches at most 255 ahead, hence the chunks.
    if !always.is_empty() {
        out.push(stmt(LD_W_ABS, OFF_NR));
        for chunk in always.chunks(255) {
            let m = chunk.len();
            for (i, nr) in chunk.iter().enumerate() {
                out.push(jump(JMP_JEQ_K, *nr, (m - i) as u8, 0));
            }
            out.push(stmt(JMP_JA, 1));
            out.push(stmt(RET_K, g.action));
        }
    }

    // Calls with argument rules: seccompiler builds the comparisons.
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (nr, m) in &g.syscalls {
        if let Match::AnyOf(list) = m {
            let mut v = Vec::with_capacity(list.len());
            for conds in list {
                v.push(rule_of(conds, abi)?);
            }
            rules.insert(i64::from(*nr), v);
        }
    }
    if rules.is_empty() {
        return Ok(());
    }
    let filter = SeccompFilter::new(rules, TAG_NEXT, TAG_MATCH, TargetArch::x86_64)
        .map_err(|e| Error::msg(format!("seccomp: {e}")))?;
    let prog: BpfProgram = filter.try_into().map_err(|e| match e {
        seccompiler::BackendError::FilterTooLarge(n) => Error::config(
            "linux.seccomp",
            format!(
                "the argument rules of one action alone compile to {n} BPF instructions, \
                 more than the kernel's limit of {MAX_INSNS}"
            ),
        ),
        e => Error::msg(format!("seccomp: {e}")),
    })?;
    let body = prog
        .get(SECCOMPILER_ARCH_CHECK..)
        .ok_or_else(|| Error::msg("seccomp: unexpected seccompiler output"))?;
    let match_k = u32::from(TAG_MATCH);
    let next_k = u32::from(TAG_NEXT);
    let n = body.len();
    for (i, insn) in body.iter().enumerate() {
        let mut insn = insn.clone();
        if insn.code == RET_K && insn.k == match_k {
            insn.k = g.action;
        } else if insn.code == RET_K && insn.k == next_k {
            // To the instruction after this group.
            insn = stmt(JMP_JA, (n - i - 1) as u32);
        }
        out.push(insn);
    }
    Ok(())
}

fn rule_of(conds: &[Cond], abi: Abi) -> Result<SeccompRule> {
    let len = if abi.args_are_32bit() {
        SeccompCmpArgLen::Dword
    } else {
        SeccompCmpArgLen::Qword
    };
    let mut v = Vec::with_capacity(conds.len());
    for c in conds {
        let (op, value) = match c.op {
            Op::Ne => (SeccompCmpOp::Ne, c.value),
            Op::Lt => (SeccompCmpOp::Lt, c.value),
            Op::Le => (SeccompCmpOp::Le, c.value),
            Op::Eq => (SeccompCmpOp::Eq, c.value),
            Op::Ge => (SeccompCmpOp::Ge, c.value),
            Op::Gt => (SeccompCmpOp::Gt, c.value),
            // runtime-spec: value is the mask, valueTwo the expected bits.
            Op::MaskedEq => (SeccompCmpOp::MaskedEq(c.value), c.value_two),
        };
        v.push(
            SeccompCondition::new(c.index, len.clone(), op, value)
                .map_err(|e| Error::msg(format!("seccomp: argument {}: {e}", c.index)))?,
        );
    }
    SeccompRule::new(v).map_err(|e| Error::msg(format!("seccomp: {e}")))
}
