//! The process a container runs, the init's and each `exec`'s alike: what is decided from
//! the config (`ProcessPlan`, pure), and the setup that applies it right before execve
//! (`setup`), shared by the init and `exec` so the two cannot drift. One file per attribute.

pub mod attrs;
pub mod capabilities;
pub mod fds;
pub mod lsm;
pub mod mempolicy;
pub mod personality;
pub mod program;
pub mod rlimits;
pub mod sched;
pub mod setup;
pub mod user;

use std::path::PathBuf;

use oci_spec::runtime::{Process, User};

use crate::error::{Error, Result};
use capabilities::CapabilityPlan;
use rlimits::RlimitPlan;

pub use setup::{final_exec, forbid_inspection, prepare_process, Prepared};

pub struct ProcessPlan {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub user: User,
    pub capabilities: CapabilityPlan,
    pub rlimits: RlimitPlan,
    pub no_new_privileges: bool,
    pub oom_score_adj: Option<i32>,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    pub apparmor_profile: Option<String>,
    pub selinux_label: Option<String>,
    pub scheduler: Option<crate::process::sched::SchedulerPlan>,
    pub io_priority: Option<crate::process::sched::IoPriorityPlan>,
    pub affinity: Option<crate::process::sched::AffinityPlan>,
    pub seccomp: Option<SeccompSetup>,
    /// linux.memoryPolicy and linux.personality: container-wide, applied to the init and to
    /// every exec'd process alike (as runc does).
    pub memory_policy: Option<crate::process::mempolicy::MemPolicyPlan>,
    pub personality: Option<crate::process::personality::PersonalityPlan>,
    /// fds 3.. kept open for the process: LISTEN_FDS first, then --preserve-fds.
    pub extra_fds: u32,
}

/// The container-wide settings of `linux` that every process of the container gets: from
/// config.json for the init, from the state for `exec`.
#[derive(Clone, Copy, Default)]
pub struct ContainerWide<'a> {
    pub seccomp: Option<&'a oci_spec::runtime::LinuxSeccomp>,
    pub memory_policy: Option<&'a oci_spec::runtime::LinuxMemoryPolicy>,
    pub personality: Option<&'a oci_spec::runtime::LinuxPersonality>,
}

/// A compiled seccomp filter and where its NOTIFY listener goes.
pub struct SeccompSetup {
    pub filter: crate::seccomp::CompiledFilter,
    pub listener_path: Option<PathBuf>,
    pub listener_metadata: Option<String>,
    /// Set when the profile denies execve: said along with an exec failure.
    pub execve_denial: Option<String>,
}

impl SeccompSetup {
    pub fn from_spec(s: &oci_spec::runtime::LinuxSeccomp) -> Result<Self> {
        let plan = crate::seccomp::SeccompPlan::from_spec(s)?;
        Ok(SeccompSetup {
            filter: crate::seccomp::compile(&plan)?,
            listener_path: plan.listener_path().map(|p| p.to_path_buf()),
            listener_metadata: plan.listener_metadata().map(str::to_string),
            execve_denial: plan.execve_denial(),
        })
    }
}

/// How the process's terminal is wired, from the command line.
#[derive(Debug, Clone, Copy)]
pub struct TerminalWiring {
    pub console_socket: bool,
    /// The caller attaches the terminal itself (`run`/`exec` in the foreground).
    pub attach: bool,
}

/// Validate a process (config.json's, or `exec`'s) into what the process
/// setup needs.
pub fn process_plan(
    process: &Process,
    wide: ContainerWide<'_>,
    wiring: TerminalWiring,
    preserve_fds: u32,
) -> Result<ProcessPlan> {
    let args = process.args().clone().unwrap_or_default();
    if args.is_empty() || args[0].is_empty() {
        return Err(Error::config("process.args", "must name a program to run"));
    }
    if !process.cwd().is_absolute() {
        return Err(Error::config(
            "process.cwd",
            format!("{:?} is not an absolute path", process.cwd()),
        ));
    }
    crate::process::lsm::check(
        process.apparmor_profile().as_deref(),
        process.selinux_label().as_deref(),
        "process",
    )?;
    let terminal = process.terminal().unwrap_or(false);
    if terminal && !wiring.console_socket && !wiring.attach {
        return Err(Error::msg(
            "process.terminal is true but no --console-socket was given: \
             a detached container needs a console socket to receive its terminal",
        ));
    }
    if !terminal && wiring.console_socket {
        return Err(Error::msg(
            "--console-socket was given but process.terminal is false",
        ));
    }
    let mut env = process.env().clone().unwrap_or_default();
    for (i, e) in env.iter().enumerate() {
        if !e.contains('=') {
            return Err(Error::config(
                format!("process.env[{i}]"),
                format!("{e:?} is not KEY=VALUE"),
            ));
        }
    }
    // systemd socket activation: fds 3..3+LISTEN_FDS go first, and the
    // container sees them as its own (it is PID 1 of its namespace).
    let listen_fds = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    if listen_fds > 0 {
        env.retain(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="));
        env.push(format!("LISTEN_FDS={listen_fds}"));
        env.push("LISTEN_PID=1".to_string());
    }
    let console_size = process.console_size().as_ref().map(|b| {
        (
            b.height().min(u16::MAX as u64) as u16,
            b.width().min(u16::MAX as u64) as u16,
        )
    });
    Ok(ProcessPlan {
        args,
        env,
        cwd: process.cwd().clone(),
        user: process.user().clone(),
        capabilities: CapabilityPlan::from_spec(process.capabilities().as_ref())?,
        rlimits: RlimitPlan::from_spec(process.rlimits().as_deref())?,
        no_new_privileges: process.no_new_privileges().unwrap_or(false),
        oom_score_adj: process.oom_score_adj(),
        terminal,
        console_size,
        apparmor_profile: process.apparmor_profile().clone(),
        selinux_label: process.selinux_label().clone(),
        scheduler: process
            .scheduler()
            .as_ref()
            .map(crate::process::sched::SchedulerPlan::from_spec)
            .transpose()?,
        io_priority: process
            .io_priority()
            .as_ref()
            .map(crate::process::sched::IoPriorityPlan::from_spec)
            .transpose()?,
        affinity: process
            .exec_cpu_affinity()
            .as_ref()
            .map(crate::process::sched::AffinityPlan::from_spec)
            .transpose()?
            .filter(|a| !a.is_empty()),
        seccomp: wide.seccomp.map(SeccompSetup::from_spec).transpose()?,
        memory_policy: wide
            .memory_policy
            .map(crate::process::mempolicy::MemPolicyPlan::from_spec)
            .transpose()?,
        personality: wide
            .personality
            .map(crate::process::personality::PersonalityPlan::from_spec)
            .transpose()?,
        extra_fds: listen_fds + preserve_fds,
    })
}
