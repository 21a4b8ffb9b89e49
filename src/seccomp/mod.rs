//! `linux.seccomp`: translate the profile into one classic-BPF program and
//! install it with seccomp(2).
//!
//! # Design: one program, groups in kernel-precedence order
//!
//! seccompiler's `SeccompFilter` has a single match action and a single
//! mismatch action. A profile has many actions (ALLOW, ERRNO with several
//! errnos, KILL, TRAP, TRACE, LOG, NOTIFY) and a default. Stacking one
//! kernel filter per action would work through the kernel's precedence
//! (KILL_PROCESS > KILL_THREAD > TRAP > ERRNO > USER_NOTIF > TRACE > LOG >
//! ALLOW across filters), but costs one seccomp(2) call and one program run
//! per action on every syscall, cannot give the default action to exactly
//! the calls no rule matches without yet another "all rules" filter, and
//! only one of the filters may carry a NOTIFY listener. So skiff assembles
//! ONE program instead:
//!
//! ```text
//! ld arch; x86_64? -> native block; i386 (if listed)? -> x86 block; else KILL_PROCESS
//! native block: ld nr; x32 bit set (and nr != -1)? -> x32 block (if listed) or KILL_PROCESS
//! each ABI block:
//!     [ld nr; nr > highest number the profile names? -> ERRNO(ENOSYS)]
//!     group 1 (most restrictive action): its calls -> RET action1, others fall through
//!     group 2 ...
//!     RET defaultAction
//! ```
//!
//! A group holds every (syscall, argument rules) of the profile that has one
//! action value (action + errno/trace data). Argument-free calls are one
//! `jeq` each to a shared `ret`; calls with argument rules are compiled by
//! seccompiler (one `SeccompFilter` per group whose match action is a tag
//! replaced by the group's action and whose mismatch action is a tag
//! replaced by a jump past the group, after its arch-check head is cut off).
//!
//! Why this is exact: a call reaches a group only if no earlier group
//! matched it, and it leaves with that group's action iff one of the
//! group's rules matches (rules OR-ed, conditions within a rule AND-ed,
//! exactly seccompiler's semantics). So a call gets the action of a rule
//! that matches it, and the default action iff no rule matches. When rules
//! with different actions match the same call, the groups' order decides:
//! they are sorted by kernel precedence (ties: first in the profile), so
//! the most restrictive wins, which is what stacked filters would give.
//! Podman's profile relies on this: `setns` is both allowed and ERRNO(EPERM)
//! there, and gets EPERM.
//!
//! Size: about one instruction per (syscall, ABI) plus seccompiler's code
//! for argument rules; Docker's profile on three ABIs is 1,104 of the
//! kernel's 4,096 (checked in `compile`).
//!
//! # Architectures
//! The native x86_64 ABI is always covered (libseccomp adds the native arch
//! to every filter, so runc's do too). `SCMP_ARCH_X86` adds the i386 ABI
//! (int 0x80, 32-bit binaries) with the i386 syscall numbers;
//! `SCMP_ARCH_X32` the x32 ABI (x86_64 arch, number | 0x4000_0000, its own
//! numbers for 512..547). A call from an ABI not covered gets
//! KILL_PROCESS: libseccomp's default "bad arch" action is KILL (thread);
//! skiff kills the whole process so that a bypass attempt cannot leave a
//! half-dead process behind. Other architectures in the list cannot occur on
//! an x86_64 kernel and are ignored. Arguments of i386 calls are compared
//! on their low 32 bits (the ABI's width, as libseccomp does).
//!
//! # ENOSYS for syscalls newer than the profile
//! As runc does: per ABI, a call numbered above the highest syscall the
//! profile names (whatever its action) returns ENOSYS instead of the default,
//! so that programs probing clone3, new timers etc. fall back. Not when the
//! default is allow-like (ALLOW, LOG, TRACE) or already ERRNO(ENOSYS).
//!
//! # Other runc behaviours kept
//! - Syscall names unknown on an ABI are skipped with a debug line.
//! - `args` with two conditions on one argument index become separate
//!   rules (OR-ed), as runc does because libseccomp cannot AND them.
//! - errnoRet defaults to EPERM for ERRNO and TRACE; with other actions it
//!   is an error (runtime-spec: "MUST print an error and fail").
//! - NOTIFY cannot be the default action, nor apply to the syscalls the
//!   init needs to hand the listener over (`HANDOFF_SYSCALLS`).

mod compile;
mod install;
mod plan;
mod tables;

#[cfg(test)]
mod bpf_eval;
#[cfg(test)]
mod tests;

pub use compile::{compile, CompiledFilter, BAD_ARCH_ACTION, MAX_INSNS};
pub use install::{install, process_state_message, recv_fd, send_fd, send_listener};
pub use plan::{action_name, Abi, SeccompPlan, HANDOFF_SYSCALLS};

/// What `features` can advertise: every entry here is implemented and
/// tested on this kernel.
pub const SUPPORTED_ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];
pub const SUPPORTED_OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];
pub const SUPPORTED_ARCHS: &[&str] = &["SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"];
pub const SUPPORTED_FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];
