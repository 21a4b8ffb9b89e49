//! Making processes: a fork-like `clone3` that can create namespaces and
//! return a pidfd, and the pidfd helpers built on it.
//!
//! The child of `clone_fork` continues in the same program image, without
//! `exec` (the runtime is never re-executed: that would cost a binary load
//! and a second parse of the config). This is sound only because skiff is
//! single-threaded: the child gets a consistent copy of every lock and
//! allocator state. The child must leave with `_exit` (or `exec`), never by
//! returning into the parent's logic.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use crate::error::{Error, Result};

/// `struct clone_args` from linux/sched.h (version 2, with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

pub enum Forked {
    Child,
    Parent { pid: i32, pidfd: Option<OwnedFd> },
}

/// Fork with extra clone flags (CLONE_NEW*), optionally straight into a
/// cgroup (v2 directory fd). Falls back to clone(2) where clone3 is missing.
///
/// # Safety
/// The caller must be single-threaded, and the child must end with `_exit`
/// or `exec`.
pub unsafe fn clone_fork(flags: u64, cgroup_fd: Option<RawFd>) -> Result<Forked> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut RawFd as u64,
        // With CLONE_PARENT the child inherits its exit signal from the caller, and clone3
        // refuses one given here.
        exit_signal: if flags & libc::CLONE_PARENT as u64 != 0 {
            0
        } else {
            libc::SIGCHLD as u64
        },
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: args is a valid clone_args of the size we pass; with no stack
    // given, the child runs on a copy of our stack like fork(2).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if rc == 0 {
        return Ok(Forked::Child);
    }
    if rc > 0 {
        // SAFETY: with CLONE_PIDFD the kernel stored a new fd that we own.
        let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
        return Ok(Forked::Parent {
            pid: rc as i32,
            pidfd,
        });
    }
    let err = Errno::last();
    if err != Errno::ENOSYS || cgroup_fd.is_some() {
        return Err(Error::sys("clone3", err));
    }
    // Kernels before 5.3: plain clone, then pidfd_open where it exists.
    // SAFETY: fork-like clone with a NULL stack; same contract as above.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags as libc::c_ulong) | libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match rc {
        0 => Ok(Forked::Child),
        pid if pid > 0 => Ok(Forked::Parent {
            pid: pid as i32,
            pidfd: pidfd_open(pid as i32).ok(),
        }),
        _ => Err(Error::sys("clone", Errno::last())),
    }
}

/// Give the process what a freshly started program expects: no blocked
/// signals, and no ignored ones (Rust's runtime ignores SIGPIPE, and
/// ignored dispositions survive execve; a container's `yes | head` must
/// die of SIGPIPE quietly). Only the ignored signals are touched: one read
/// of /proc/self/status instead of a syscall per signal.
pub fn reset_signals() {
    crate::sys::signal::restore_default_stoppers();
    // SAFETY: an initialised empty set; sigprocmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
    let ignored = crate::sys::fsio::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("SigIgn:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        // Unknown: reset the one Rust is known to ignore.
        .unwrap_or(1 << (libc::SIGPIPE - 1));
    for sig in 1..=64 {
        if ignored & (1u64 << (sig - 1)) != 0 && sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: setting a default disposition has no memory effects.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
}

pub fn pidfd_open(pid: i32) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Error::sys(format!("pidfd_open {pid}"), Errno::last()));
    }
    // SAFETY: the kernel returned a new fd that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> Result<()> {
    // SAFETY: plain syscall on a valid fd; no siginfo passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(Error::sys(format!("send signal {sig}"), Errno::last()));
    }
    Ok(())
}

/// One entry for poll(2); a negative `fd` is ignored by the kernel.
pub fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// Wait until the process behind `pidfd` has exited, up to `timeout_ms`.
/// Returns false on timeout.
pub fn pidfd_wait_exit(pidfd: BorrowedFd<'_>, timeout_ms: i32) -> Result<bool> {
    let mut pfd = pollfd(pidfd.as_raw_fd(), libc::POLLIN);
    // SAFETY: one valid pollfd.
    crate::error::retry_eintr(|| Errno::result(unsafe { libc::poll(&mut pfd, 1, timeout_ms) }))
        .map(|ready| ready > 0)
        .map_err(|e| Error::sys("poll pidfd", e))
}

/// Reap a child, returning its exit code the shell's way (128+N for signal N).
pub fn wait_exit_code(pid: i32) -> Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid int to fill.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc >= 0 {
            break;
        }
        let e = Errno::last();
        if e != Errno::EINTR {
            return Err(Error::sys(format!("wait for pid {pid}"), e));
        }
    }
    Ok(exit_code(status))
}

/// Exit code of a wait status, the shell's way: the status, or 128+N for signal N.
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        // Stopped/continued are not reported without WUNTRACED.
        255
    }
}

/// Field 22 (starttime, in clock ticks since boot) and field 3 (state) of /proc/PID/stat.
/// `None` when the process does not exist.
pub fn stat_start_time(pid: i32) -> Option<(u64, char)> {
    let text = crate::sys::fsio::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<(u64, char)> {
    // The command name is in parentheses and may itself contain ") ", so
    // split at the last one.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // rest starts at field 3; starttime is field 22.
    let start = fields.nth(22 - 4)?.parse().ok()?;
    Some((start, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "1234 (a) b) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10 18446744073709551615";
        assert_eq!(parse_stat(line), Some((98765, 'S')));
    }

    #[test]
    fn own_start_time_is_readable() {
        let (t, state) = stat_start_time(std::process::id() as i32).unwrap();
        assert!(t > 0);
        assert!(state == 'R' || state == 'S');
        assert!(stat_start_time(-5).is_none());
    }

    #[test]
    fn fork_wait_and_exit_codes() {
        // SAFETY: the test child only calls _exit.
        match unsafe { clone_fork(0, None) }.unwrap() {
            Forked::Child => unsafe { libc::_exit(7) },
            Forked::Parent { pid, pidfd } => {
                let pidfd = pidfd.unwrap();
                assert!(pidfd_wait_exit(std::os::fd::AsFd::as_fd(&pidfd), 5000).unwrap());
                assert_eq!(wait_exit_code(pid).unwrap(), 7);
            }
        }
    }
}
