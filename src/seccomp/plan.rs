//! Deciding: `linux.seccomp` -> a per-ABI table of syscall numbers, argument
//! conditions and actions. Pure; every error names the config field.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use super::tables;
use crate::error::{Error, Result};

const FIELD: &str = "linux.seccomp";

/// The syscalls skiff's init makes between installing a filter and handing
/// the notification listener to the runtime (`send_fd` then the sync
/// channel's send/recv, and the error path's write/exit). A NOTIFY on any of
/// them would block the init on an agent that has no listener yet.
pub const HANDOFF_SYSCALLS: &[&str] = &[
    "sendmsg",
    "sendto",
    "recvfrom",
    "recvmsg",
    "write",
    "exit",
    "exit_group",
];

/// The x86 ABIs a task on an x86_64 kernel can make syscalls with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Abi {
    /// AUDIT_ARCH_X86_64, syscall numbers without the x32 bit.
    X86_64,
    /// AUDIT_ARCH_I386 (int 0x80, sysenter, 32-bit processes).
    X86,
    /// AUDIT_ARCH_X86_64 with the x32 bit (0x4000_0000) in the number.
    X32,
}

impl Abi {
    fn table(self) -> &'static [(&'static str, u16)] {
        match self {
            Abi::X86_64 => tables::X86_64,
            Abi::X86 => tables::X86,
            Abi::X32 => tables::X32,
        }
    }

    /// The number seccomp_data.nr carries for `name` on this ABI.
    pub fn syscall_nr(self, name: &str) -> Option<u32> {
        let t = self.table();
        let i = t.binary_search_by(|(n, _)| (*n).cmp(name)).ok()?;
        let nr = u32::from(t[i].1);
        Some(if self == Abi::X32 { nr | X32_BIT } else { nr })
    }

    /// Arguments of 32-bit ABIs are 32 bits wide: only the low half of
    /// seccomp_data.args is meaningful (libseccomp compares only it too).
    pub(super) fn args_are_32bit(self) -> bool {
        self == Abi::X86
    }
}

pub(super) const X32_BIT: u32 = 0x4000_0000;

/// One comparison of a syscall argument (runtime-spec `args[]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cond {
    pub index: u8,
    pub op: Op,
    pub value: u64,
    /// For MASKED_EQ: `(arg & value) == value_two`.
    pub value_two: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    MaskedEq,
}

/// What one syscall number does within one action group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Matches whatever the arguments.
    Always,
    /// Matches when any of the rules matches; a rule matches when all its
    /// conditions do.
    AnyOf(Vec<Vec<Cond>>),
}

/// All syscalls that get one action (a SECCOMP_RET_* value with its data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub action: u32,
    pub syscalls: BTreeMap<u32, Match>,
}

/// The filter for one ABI: groups in evaluation order, then the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbiPlan {
    pub abi: Abi,
    pub groups: Vec<Group>,
    /// Syscalls numbered above this, which the profile cannot know, fail
    /// with ENOSYS instead of the default action (runc's rule).
    pub enosys_above: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeccompPlan {
    pub(super) abis: Vec<AbiPlan>,
    pub(super) default_action: u32,
    /// seccomp(2) filter flags, NEW_LISTENER excluded (added by `compile`).
    pub(super) flags: u32,
    pub(super) notify: bool,
    pub(super) listener_path: Option<PathBuf>,
    pub(super) listener_metadata: Option<String>,
}

/// Kernel precedence of an action (smaller = more restrictive = wins when
/// several filters, or here several groups, match one call).
pub(super) fn precedence(action: u32) -> i32 {
    (action & libc::SECCOMP_RET_ACTION_FULL) as i32
}

fn action_value(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    errno_field: &str,
) -> Result<u32> {
    let data = |default: u32| -> Result<u32> {
        let v = errno_ret.unwrap_or(default);
        if v > libc::SECCOMP_RET_DATA {
            return Err(Error::config(
                errno_field,
                format!("{v} does not fit the 16 bits seccomp passes on"),
            ));
        }
        Ok(v)
    };
    let no_data = |name: &str| -> Result<()> {
        match errno_ret {
            Some(_) => Err(Error::config(
                errno_field,
                format!(
                    "{name} does not take an errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"
                ),
            )),
            None => Ok(()),
        }
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            no_data("SCMP_ACT_KILL_THREAD")?;
            libc::SECCOMP_RET_KILL_THREAD
        }
        LinuxSeccompAction::ScmpActKillProcess => {
            no_data("SCMP_ACT_KILL_PROCESS")?;
            libc::SECCOMP_RET_KILL_PROCESS
        }
        LinuxSeccompAction::ScmpActTrap => {
            no_data("SCMP_ACT_TRAP")?;
            libc::SECCOMP_RET_TRAP
        }
        LinuxSeccompAction::ScmpActErrno => libc::SECCOMP_RET_ERRNO | data(libc::EPERM as u32)?,
        // runc hands the tracer EPERM as the event message when none is given.
        LinuxSeccompAction::ScmpActTrace => libc::SECCOMP_RET_TRACE | data(libc::EPERM as u32)?,
        LinuxSeccompAction::ScmpActNotify => {
            no_data("SCMP_ACT_NOTIFY")?;
            libc::SECCOMP_RET_USER_NOTIF
        }
        LinuxSeccompAction::ScmpActLog => {
            no_data("SCMP_ACT_LOG")?;
            libc::SECCOMP_RET_LOG
        }
        LinuxSeccompAction::ScmpActAllow => {
            no_data("SCMP_ACT_ALLOW")?;
            libc::SECCOMP_RET_ALLOW
        }
    })
}

fn op_of(op: LinuxSeccompOperator) -> Op {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => Op::Ne,
        LinuxSeccompOperator::ScmpCmpLt => Op::Lt,
        LinuxSeccompOperator::ScmpCmpLe => Op::Le,
        LinuxSeccompOperator::ScmpCmpEq => Op::Eq,
        LinuxSeccompOperator::ScmpCmpGe => Op::Ge,
        LinuxSeccompOperator::ScmpCmpGt => Op::Gt,
        LinuxSeccompOperator::ScmpCmpMaskedEq => Op::MaskedEq,
    }
}

/// Which ABIs the filter covers. The native one always (libseccomp adds it
/// to every filter, so runc's filters always cover it); x86 and x32 when
/// listed. Other architectures can never reach an x86_64 kernel's filter,
/// so listing them changes nothing.
fn abis_of(archs: Option<&Vec<Arch>>) -> Vec<Abi> {
    let mut abis = vec![Abi::X86_64];
    for a in archs.into_iter().flatten() {
        let abi = match a {
            Arch::ScmpArchNative | Arch::ScmpArchX86_64 => continue,
            Arch::ScmpArchX86 => Abi::X86,
            Arch::ScmpArchX32 => Abi::X32,
            other => {
                log::debug!("seccomp: architecture {other} cannot occur on this kernel; ignored");
                continue;
            }
        };
        if !abis.contains(&abi) {
            abis.push(abi);
        }
    }
    abis
}

/// runc's split: libseccomp cannot AND two conditions on one argument, so
/// runc makes each condition its own rule (OR-ed) when two share an index;
/// profiles written for runc rely on that. Otherwise all are AND-ed.
fn rules_of(conds: Vec<Cond>) -> Vec<Vec<Cond>> {
    let shared_index = conds
        .iter()
        .enumerate()
        .any(|(i, c)| conds[..i].iter().any(|d| d.index == c.index));
    if shared_index {
        conds.into_iter().map(|c| vec![c]).collect()
    } else {
        vec![conds]
    }
}

impl SeccompPlan {
    pub fn from_spec(s: &LinuxSeccomp) -> Result<Self> {
        let default_action = action_value(
            s.default_action(),
            s.default_errno_ret(),
            &format!("{FIELD}.defaultErrnoRet"),
        )?;
        if default_action == libc::SECCOMP_RET_USER_NOTIF {
            return Err(Error::config(
                format!("{FIELD}.defaultAction"),
                "SCMP_ACT_NOTIFY cannot be the default action: the runtime's own syscalls after \
                 installing the filter would wait for an agent that has no listener yet",
            ));
        }

        let mut flags = 0u32;
        for f in s.flags().iter().flatten() {
            flags |= match f {
                LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
                LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
                LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                    libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
                }
                LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                    libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
                }
            } as u32;
        }

        let abis = abis_of(s.architectures().as_ref());
        // Per ABI: action -> group index, groups in order of first appearance.
        let mut groups: Vec<Vec<Group>> = vec![Vec::new(); abis.len()];
        let mut max_nr: Vec<Option<u32>> = vec![None; abis.len()];
        let mut notify = false;

        for (i, sc) in s.syscalls().iter().flatten().enumerate() {
            let field = format!("{FIELD}.syscalls[{i}]");
            if sc.names().is_empty() {
                return Err(Error::config(
                    format!("{field}.names"),
                    "must name at least one syscall",
                ));
            }
            let action = action_value(sc.action(), sc.errno_ret(), &format!("{field}.errnoRet"))?;
            if action == libc::SECCOMP_RET_USER_NOTIF {
                notify = true;
                if let Some(n) = sc
                    .names()
                    .iter()
                    .find(|n| HANDOFF_SYSCALLS.contains(&n.as_str()))
                {
                    return Err(Error::config(
                        format!("{field}.action"),
                        format!(
                            "SCMP_ACT_NOTIFY cannot be used for {n}: the runtime needs it to hand \
                             the listener to the agent after installing the filter"
                        ),
                    ));
                }
            }
            let mut conds = Vec::new();
            for (j, a) in sc.args().iter().flatten().enumerate() {
                if a.index() > 5 {
                    return Err(Error::config(
                        format!("{field}.args[{j}].index"),
                        format!("{} is not a syscall argument (0 to 5)", a.index()),
                    ));
                }
                conds.push(Cond {
                    index: a.index() as u8,
                    op: op_of(a.op()),
                    value: a.value(),
                    value_two: a.value_two().unwrap_or(0),
                });
            }
            let rules = rules_of(conds);

            for name in sc.names() {
                let mut known = false;
                for (k, abi) in abis.iter().enumerate() {
                    let Some(nr) = abi.syscall_nr(name) else {
                        continue;
                    };
                    known = true;
                    max_nr[k] = max_nr[k].max(Some(nr));
                    let g = match groups[k].iter().position(|g| g.action == action) {
                        Some(p) => &mut groups[k][p],
                        None => {
                            groups[k].push(Group {
                                action,
                                syscalls: BTreeMap::new(),
                            });
                            let last = groups[k].len() - 1;
                            &mut groups[k][last]
                        }
                    };
                    add_rules(
                        g.syscalls.entry(nr).or_insert(Match::AnyOf(Vec::new())),
                        &rules,
                    );
                }
                if !known {
                    log::debug!("seccomp: {field}: unknown syscall {name:?} skipped");
                }
            }
        }

        if notify && s.listener_path().is_none() {
            return Err(Error::config(
                format!("{FIELD}.listenerPath"),
                "required when SCMP_ACT_NOTIFY is used",
            ));
        }
        if s.listener_metadata().is_some() && s.listener_path().is_none() {
            return Err(Error::config(
                format!("{FIELD}.listenerMetadata"),
                "must not be set without listenerPath",
            ));
        }

        let enosys = enosys_rule_applies(default_action);
        let abis = abis
            .into_iter()
            .zip(groups)
            .zip(max_nr)
            .map(|((abi, mut groups), max)| {
                // Stable: among equal precedence, profile order decides.
                groups.sort_by_key(|g| precedence(g.action));
                AbiPlan {
                    abi,
                    groups,
                    enosys_above: if enosys { max } else { None },
                }
            })
            .collect();

        Ok(SeccompPlan {
            abis,
            default_action,
            flags,
            notify,
            listener_path: if notify {
                s.listener_path().clone()
            } else {
                None
            },
            listener_metadata: s.listener_metadata().clone(),
        })
    }

    /// True when the filter has SCMP_ACT_NOTIFY rules: `install` then
    /// returns a listener that must reach `listener_path()`.
    pub fn needs_listener(&self) -> bool {
        self.notify
    }

    pub fn listener_path(&self) -> Option<&std::path::Path> {
        self.listener_path.as_deref()
    }

    pub fn listener_metadata(&self) -> Option<&str> {
        self.listener_metadata.as_deref()
    }

    /// The action a native call of `name` gets whatever its arguments, when
    /// that does not depend on them (for error messages such as "the profile
    /// denies execve").
    pub fn unconditional_action(&self, name: &str) -> Option<u32> {
        let abi = self.abis.first()?;
        let Some(nr) = abi.abi.syscall_nr(name) else {
            return Some(self.default_action);
        };
        let mut conditional = false;
        for g in &abi.groups {
            match g.syscalls.get(&nr) {
                Some(Match::Always) => return (!conditional).then_some(g.action),
                Some(Match::AnyOf(_)) => conditional = true,
                None => {}
            }
        }
        if conditional {
            return None;
        }
        if abi.enosys_above.is_some_and(|m| nr > m) {
            return Some(libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
        }
        Some(self.default_action)
    }

    /// An explanation when the profile stops the container process from
    /// being exec'd (execve is denied outright), for the lead's error path.
    pub fn execve_denial(&self) -> Option<String> {
        let a = self.unconditional_action("execve")?;
        match a & libc::SECCOMP_RET_ACTION_FULL {
            libc::SECCOMP_RET_ALLOW
            | libc::SECCOMP_RET_LOG
            | libc::SECCOMP_RET_TRACE
            | libc::SECCOMP_RET_USER_NOTIF => None,
            _ => Some(format!(
                "{FIELD} denies execve ({}), so the container process cannot be started",
                action_name(a)
            )),
        }
    }
}

/// runc's ENOSYS stub: only when the default denies (allow-like defaults let
/// new syscalls through anyway; a tracer handles unknown calls itself), and
/// pointless when the default already is ENOSYS.
fn enosys_rule_applies(default_action: u32) -> bool {
    let kind = default_action & libc::SECCOMP_RET_ACTION_FULL;
    let allow_like = matches!(
        kind,
        libc::SECCOMP_RET_ALLOW | libc::SECCOMP_RET_LOG | libc::SECCOMP_RET_TRACE
    );
    let already_enosys = default_action == libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    !allow_like && !already_enosys
}

fn add_rules(m: &mut Match, rules: &[Vec<Cond>]) {
    match m {
        Match::Always => {}
        Match::AnyOf(existing) => {
            if rules.iter().any(|r| r.is_empty()) {
                *m = Match::Always;
            } else {
                existing.extend(rules.iter().cloned());
            }
        }
    }
}

/// The runtime-spec name of an action value, for messages.
pub fn action_name(action: u32) -> String {
    let data = action & libc::SECCOMP_RET_DATA;
    match action & libc::SECCOMP_RET_ACTION_FULL {
        libc::SECCOMP_RET_KILL_PROCESS => "SCMP_ACT_KILL_PROCESS".into(),
        libc::SECCOMP_RET_KILL_THREAD => "SCMP_ACT_KILL_THREAD".into(),
        libc::SECCOMP_RET_TRAP => "SCMP_ACT_TRAP".into(),
        libc::SECCOMP_RET_ERRNO => format!("SCMP_ACT_ERRNO({data})"),
        libc::SECCOMP_RET_USER_NOTIF => "SCMP_ACT_NOTIFY".into(),
        libc::SECCOMP_RET_TRACE => format!("SCMP_ACT_TRACE({data})"),
        libc::SECCOMP_RET_LOG => "SCMP_ACT_LOG".into(),
        libc::SECCOMP_RET_ALLOW => "SCMP_ACT_ALLOW".into(),
        other => format!("action {other:#x}"),
    }
}
