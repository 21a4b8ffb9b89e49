//! Applying a `ProcessPlan` in the init or an exec child, right before execve: every step
//! the runtime does while still privileged, then the container's seccomp filter, then execve.

use std::os::fd::BorrowedFd;
use std::path::PathBuf;

use nix::errno::Errno;

use super::{capabilities, program, rlimits, user, ProcessPlan};
use crate::container::sync::{Channel, ToInit, ToParent};
use crate::error::{Error, Result};

/// What `prepare_process` leaves for the very last moment.
pub struct Prepared {
    pub program: PathBuf,
    pub env: Vec<String>,
    /// The seccomp filter still to install, right before execve.
    pub seccomp_late: bool,
}

/// Until it execs, this process is a copy of skiff: its /proc/PID/exe is
/// the runtime binary. Non-dumpable, no process of the container can open
/// that (or our memory, or our fds) through /proc (the CVE-2019-5736
/// class); execve restores the flag for the user program.
pub fn forbid_inspection() {
    // SAFETY: prctl with plain integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}

/// The last steps before exec, shared by the init and `exec`: resolve the program (so "not
/// found" is reported before anything runs), then everything the runtime itself does while
/// still privileged (limits, scheduling, working directory, fds, LSM, user, capabilities).
///
/// The seccomp filter is the container's, not the runtime's: it is installed by
/// [`final_exec`] right before execve, so nothing skiff does depends on what the profile
/// allows. Without no_new_privs that needs CAP_SYS_ADMIN then, after the user switch and the
/// capability drop: it is kept in the effective and permitted sets until execve, which drops
/// what is not in the process's bounding, inheritable or ambient sets. The exception is a
/// profile with SCMP_ACT_NOTIFY rules: its listener goes to the runtime (and the agent) at
/// `create`, as with runc, so that filter is installed here, before the user switch.
pub fn prepare_process(p: &ProcessPlan, channel: &Channel) -> Result<Prepared> {
    let mut env = p.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(p.user.uid())));
    }
    let program = program::find_executable(&p.args[0], &env, &p.cwd)?;
    if let Some(m) = &p.memory_policy {
        crate::process::mempolicy::apply(m)?;
    }
    if let Some(x) = &p.personality {
        crate::process::personality::apply(x)?;
    }
    rlimits::apply(&p.rlimits)?;
    capabilities::drop_bounding(&p.capabilities)?;
    if p.no_new_privileges {
        crate::process::attrs::set_no_new_privs()?;
    }
    // Real-time policies and high I/O priorities need CAP_SYS_NICE: before the switch.
    if let Some(s) = &p.scheduler {
        crate::process::sched::apply_scheduler(s)?;
    }
    if let Some(io) = &p.io_priority {
        crate::process::sched::apply_io_priority(io)?;
    }
    // The working directory as root first, as runc does: the process's user may not be able
    // to reach it (uid 42 with cwd /root), yet it runs there. Where root may not (a 0700
    // directory of the user's, without CAP_DAC_OVERRIDE), again after the switch.
    let cwd_later = match nix::unistd::chdir(&p.cwd) {
        Ok(()) => false,
        Err(Errno::EACCES) => true,
        Err(e) => return Err(Error::sys_path("chdir to process.cwd", &p.cwd, e)),
    };
    if !cwd_later {
        crate::rootfs::verify_cwd_inside_root()?;
    }
    crate::process::fds::prepare_fds(p.extra_fds)?;
    crate::process::lsm::apply(p.apparmor_profile.as_deref(), p.selinux_label.as_deref())?;
    let mut seccomp_late = false;
    if let Some(sc) = &p.seccomp {
        if sc.filter.has_listener() {
            install_seccomp(sc, channel)?;
        } else {
            seccomp_late = true;
        }
    }
    user::switch_user(&p.user)?;
    if cwd_later {
        nix::unistd::chdir(&p.cwd)
            .map_err(|e| Error::sys_path("chdir to process.cwd", &p.cwd, e))?;
        crate::rootfs::verify_cwd_inside_root()?;
    }
    let keep_for_seccomp = seccomp_late && !p.no_new_privileges;
    capabilities::apply_final(&p.capabilities, keep_for_seccomp)?;
    Ok(Prepared {
        program,
        env,
        seccomp_late,
    })
}

/// Install the filter; a NOTIFY listener goes to the runtime process, which
/// can reach the agent's socket and has the container state.
pub fn install_seccomp(sc: &crate::process::SeccompSetup, channel: &Channel) -> Result<()> {
    let Some(listener) = crate::seccomp::install(&sc.filter)? else {
        return Ok(());
    };
    channel.send(&ToParent::SeccompListener)?;
    // SAFETY: the channel's fd is open for the life of this process.
    let sock = unsafe { BorrowedFd::borrow_raw(channel.raw_fd()) };
    crate::seccomp::send_fd(sock, std::os::fd::AsFd::as_fd(&listener))?;
    drop(listener);
    match channel.recv::<ToInit>()? {
        Some(ToInit::SeccompListenerSent) => Ok(()),
        Some(other) => Err(Error::msg(format!("sync: unexpected {other:?}"))),
        // SAFETY: the runtime is gone; nobody will start us.
        None => unsafe { libc::_exit(1) },
    }
}

/// The exec itself, with the final CPU affinity and the seccomp filter: execve is the only
/// syscall of the runtime's the filter sees (argv and envp are built before it).
pub fn final_exec(p: &ProcessPlan, prepared: &Prepared) -> Error {
    if let Some(aff) = &p.affinity {
        if let Err(e) = crate::process::sched::apply_final_affinity(aff, 0) {
            return e;
        }
    }
    let ready = match program::PreparedExec::new(&prepared.program, &p.args, &prepared.env) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if prepared.seccomp_late {
        if let Some(sc) = &p.seccomp {
            if let Err(e) = crate::seccomp::install(&sc.filter) {
                return e;
            }
        }
    }
    let err = ready.exec();
    match p.seccomp.as_ref().and_then(|s| s.execve_denial.as_ref()) {
        Some(why) => Error::Context {
            context: why.clone(),
            source: Box::new(err),
        },
        None => err,
    }
}

/// $HOME for a process whose env has none: from the container's
/// /etc/passwd, "/" when the user is not listed.
fn home_of(uid: u32) -> String {
    // The container's own file: a FIFO or a huge file there must not hang or bloat us.
    let text = crate::sys::fsio::read_regular("/etc/passwd", 4 << 20)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    match crate::process::user::passwd_entry(&text, uid) {
        Some((_, home)) if !home.is_empty() => home.to_string(),
        _ => "/".into(),
    }
}
