//! The container init: the child of `create`'s clone3, running in the new
//! namespaces. It sets up the container, reports `Ready`, waits for
//! `start` on the start socket, and execs the user process.
//!
//! Order matters, and each step says why it is where it is:
//! 1. wait for the uid/gid maps (nothing is privileged in a new user
//!    namespace before they exist), become root of the namespace;
//! 2. join namespaces by path (user first), unshare the time namespace;
//! 3. hostname, mounts (`rootfs::prepare`), runtime hooks in the parent,
//!    createContainer hooks here — all before pivot_root, as the spec says;
//! 4. pivot_root, console (needs the container's devpts), sysctl (needs its
//!    /proc), masked and read-only paths, read-only root;
//! 5. process attributes that need privilege (rlimits, bounding set) while
//!    still root, then the user switch and the final capabilities;
//! 6. `Ready`, then block in accept() until `start` connects.
//!
//! Errors never return to the caller's logic: they go to the parent as one
//! text naming the step, path and errno, and the init `_exit`s.

use std::convert::Infallible;
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::container::plan::ContainerPlan;
use crate::container::sync::{Channel, ToInit, ToParent};
use crate::error::{Context, Error, Result};
use crate::namespaces::{self, Disposition, NamespaceFile};
use crate::process::{final_exec, forbid_inspection, prepare_process};
use crate::{hooks, rootfs};

pub struct InitArgs<'a> {
    pub plan: &'a ContainerPlan,
    pub channel: &'a Channel,
    pub start_listener: RawFd,
    pub console: Option<RawFd>,
    pub ns_files: &'a [NamespaceFile],
    /// Cgroups the init moves itself into (v1, no user namespace): see
    /// `CgroupHandle::join_self_v1`.
    pub join_cgroup: Option<&'a crate::cgroups::CgroupHandle>,
    /// Create the network namespace here rather than in the clone: the
    /// parent makes the v1 cgroups meanwhile (see `create`).
    pub unshare_network: bool,
    /// The host's mount table as the parent read it (see `rootfs::prepare_with`).
    pub host_mountinfo: &'a str,
    /// Idmapped mounts the parent prepared (detached), attached by the init.
    pub idmapped: &'a crate::rootfs::DetachedMounts,
}

/// Never returns: the init either execs the user process or exits.
pub fn run(args: InitArgs<'_>) -> ! {
    let err = match close_foreign_fds(&args).and_then(|()| setup_and_wait(&args)) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = args
        .channel
        .send(&ToParent::Failed(crate::container::sync::bounded_text(
            err.to_string(),
        )));
    // SAFETY: _exit skips the parent's atexit handlers and destructors, which
    // must not run twice (we are a fork of it).
    unsafe { libc::_exit(1) }
}

/// The init holds nothing of the runtime's or the caller's beyond the container's stdio and
/// preserved fds, and what its own setup still needs (the channel, the start socket, the
/// console socket, namespaces to join, id-mapped trees to attach): no state directory, lock
/// or cgroup fd that a process of the container (with CAP_SYS_PTRACE, through /proc/PID/fd)
/// could use to reach the host's tree while the container is `created`.
fn close_foreign_fds(a: &InitArgs<'_>) -> Result<()> {
    let mut keep = vec![a.channel.raw_fd(), a.start_listener];
    keep.extend(a.console);
    keep.extend(a.ns_files.iter().map(|n| n.fd.as_raw_fd()));
    keep.extend(a.idmapped.raw_fds());
    crate::process::fds::close_fds_from(3 + a.plan.process.extra_fds as RawFd, &keep)
}

fn setup_and_wait(a: &InitArgs<'_>) -> Result<Infallible> {
    let plan = a.plan;
    // The container starts with no signal blocked or ignored.
    crate::sys::spawn::reset_signals();
    if a.unshare_network {
        namespaces::unshare(libc::CLONE_NEWNET as u64).context("network namespace")?;
    }

    // The parent makes the container's cgroups (and places us in those we
    // do not join ourselves, and writes the id maps) before we run anything
    // that belongs to the container.
    let state_json = match a.channel.recv::<ToInit>()? {
        Some(ToInit::Proceed { state_json }) => state_json,
        Some(other) => return Err(Error::msg(format!("sync: unexpected {other:?}"))),
        // The parent is gone: nobody will ever start us.
        // SAFETY: see `run`.
        None => unsafe { libc::_exit(1) },
    };
    // Non-dumpable from here, before anything of the container's (a joined
    // namespace, its mounts) can reach us; not before: until Proceed the
    // parent may write our id maps as an unprivileged user, which only works
    // while our /proc files are still ours (a flag flipping halfway through
    // made it write half the maps itself, then fail with newuidmap).
    forbid_inspection();
    if let Some(cg) = a.join_cgroup {
        cg.join_self_v1()?;
    }

    if let Some(aff) = &plan.process.affinity {
        crate::process::sched::apply_initial_affinity(aff, 0)?;
    }
    // Joining happens first for user (it grants the rights for the rest).
    for ns in a.ns_files {
        if ns.typ == oci_spec::runtime::LinuxNamespaceType::Pid {
            continue; // entered by the parent for the clone
        }
        namespaces::join(ns)?;
    }
    for ns in a.ns_files {
        // SAFETY: our copy of a namespace file the parent opened; joined, no longer used
        // here (this forked child never drops the parent's objects).
        unsafe { libc::close(ns.fd.as_raw_fd()) };
    }
    namespaces::unshare(plan.namespaces.unshare_flags_after_join())?;
    if plan.namespaces.cgroup == Disposition::New {
        namespaces::unshare(libc::CLONE_NEWCGROUP as u64).context("cgroup namespace")?;
    }
    if plan.namespaces.needs_intermediate() {
        enter_new_pid_namespace(a.channel)?;
    }
    // Before become_root: changing ids makes us non-dumpable, which hands
    // /proc/self files to the host's root, and the offsets file with them.
    if plan.namespaces.time == Disposition::New {
        namespaces::new_time_namespace(&plan.namespaces.time_offsets).context("time namespace")?;
    }
    if let Some(adj) = plan.process.oom_score_adj {
        crate::process::attrs::set_oom_score_adj(adj)?;
    }
    if plan.namespaces.in_userns() {
        become_root()?;
    }
    if plan.new_keyring {
        join_session_keyring(&plan.id)?;
    }
    if let Some(h) = &plan.hostname {
        nix::unistd::sethostname(h).map_err(|e| Error::sys(format!("sethostname {h:?}"), e))?;
    }
    if let Some(d) = &plan.domainname {
        set_domainname(d)?;
    }

    // A mount namespace joined by path is not a copy of the parent's: its
    // own table says where the cgroup hierarchies are.
    let host_mountinfo = match plan.namespaces.mount {
        Disposition::Join(_) => None,
        _ => Some(a.host_mountinfo),
    };
    rootfs::prepare_with(&plan.rootfs, a.idmapped, host_mountinfo)?;
    for fd in a.idmapped.raw_fds() {
        // SAFETY: our copies of the trees the parent prepared, attached above.
        unsafe { libc::close(fd) };
    }

    if plan.has_runtime_hooks() {
        a.channel.send(&ToParent::RuntimeHooks)?;
        match a.channel.recv::<ToInit>()? {
            Some(ToInit::RuntimeHooksDone) => {}
            Some(other) => return Err(Error::msg(format!("sync: unexpected {other:?}"))),
            // SAFETY: see `run`.
            None => unsafe { libc::_exit(1) },
        }
    }
    let state_bytes = state_json.unwrap_or_default().into_bytes();
    hooks::run_hooks_with(
        "createContainer",
        &plan.hooks.create_container,
        &state_bytes,
        &hooks::HookEnv {
            cwd: Some(plan.rootfs.rootfs()),
            filter: None,
        },
    )?;

    rootfs::enter(&plan.rootfs)?;
    ensure_cwd(&plan.process.cwd)?;
    if let Some(fd) = a.console {
        // SAFETY: the parent keeps this fd open in our copy until exec.
        let sock = unsafe { BorrowedFd::borrow_raw(fd) };
        crate::terminal::console::setup_console(
            sock,
            plan.process.console_size,
            true,
            plan.process.user.uid(),
        )
        .context("set up the console")?;
        // SAFETY: the socket has done its job; closing our own fd.
        unsafe { libc::close(fd) };
    }
    plan.sysctl.apply()?;
    rootfs::finish(&plan.rootfs)?;

    let prepared = prepare_process(&plan.process, a.channel)?;

    a.channel.send(&ToParent::Ready)?;
    // Wait until the parent has recorded us: if it dies before that, no
    // state names this init, so nobody could start or list it: leave.
    match a.channel.recv::<ToInit>()? {
        Some(ToInit::Committed) => {}
        Some(other) => return Err(Error::msg(format!("sync: unexpected {other:?}"))),
        // SAFETY: see `run`.
        None => unsafe { libc::_exit(1) },
    }

    let conn = accept_start(a.start_listener)?;
    // Under the container's filter, unless the init has it already (a NOTIFY profile).
    let hook_filter = plan
        .process
        .seccomp
        .as_ref()
        .filter(|_| prepared.seccomp_late)
        .map(|sc| &sc.filter);
    if let Err(e) = hooks::run_hooks_with(
        "startContainer",
        &plan.hooks.start_container,
        &state_bytes,
        &hooks::HookEnv {
            cwd: None,
            filter: hook_filter,
        },
    ) {
        fail_start(conn, &e);
    }
    let err = final_exec(&plan.process, &prepared);
    fail_start(conn, &err)
}

/// Tell the `start` command why the container could not start, and exit.
fn fail_start(conn: OwnedFd, err: &Error) -> ! {
    let mut f = std::fs::File::from(conn);
    let _ = f.write_all(err.to_string().as_bytes());
    drop(f);
    // SAFETY: see `run`.
    unsafe { libc::_exit(1) }
}

/// In a user namespace, be uid/gid 0 of it, so that the setup runs as the
/// namespace's root (the host uid we came in with is unmapped there).
fn become_root() -> Result<()> {
    // SAFETY: plain id syscalls; we are single-threaded so no libc setxid broadcast is needed.
    unsafe {
        if libc::setresgid(0, 0, 0) < 0 {
            return Err(Error::sys(
                "setresgid 0 in the user namespace (is gid 0 mapped?)",
                Errno::last(),
            ));
        }
        if libc::setresuid(0, 0, 0) < 0 {
            return Err(Error::sys(
                "setresuid 0 in the user namespace (is uid 0 mapped?)",
                Errno::last(),
            ));
        }
    }
    Ok(())
}

/// For a user namespace joined by path, a new pid namespace must be created
/// from inside it, and only children enter it: fork once more. The
/// intermediate reports the real init's pid and leaves.
fn enter_new_pid_namespace(channel: &Channel) -> Result<()> {
    namespaces::unshare(libc::CLONE_NEWPID as u64)?;
    // SAFETY: single-threaded; the child continues the setup, the parent only sends and exits.
    match unsafe { crate::sys::spawn::clone_fork(0, None) }? {
        crate::sys::spawn::Forked::Child => Ok(()),
        crate::sys::spawn::Forked::Parent { pid, .. } => {
            let _ = channel.send(&ToParent::InitPid(pid));
            // SAFETY: see `run`.
            unsafe { libc::_exit(0) }
        }
    }
}

fn join_session_keyring(id: &str) -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // runc's name: the kernel reserves names that start with "." (an id may).
    let name = std::ffi::CString::new(format!("_ses.{id}"))
        .map_err(|_| Error::InvalidId(id.to_string()))?;
    // SAFETY: keyctl with a valid NUL-terminated name.
    let rc = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if rc < 0 {
        let e = Errno::last();
        // Kernels without keyrings, or where keyctl is filtered: the keyring is an isolation nicety.
        if e == Errno::ENOSYS {
            return Ok(());
        }
        return Err(Error::sys("join a new session keyring", e));
    }
    Ok(())
}

fn set_domainname(name: &str) -> Result<()> {
    // SAFETY: the pointer and length describe a valid byte string.
    let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if rc < 0 {
        return Err(Error::sys(format!("setdomainname {name:?}"), Errno::last()));
    }
    Ok(())
}

/// runc creates a missing working directory; we do it as root, inside the
/// new root, so the path cannot lead outside it.
fn ensure_cwd(cwd: &Path) -> Result<()> {
    match std::fs::metadata(cwd) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::sys_path("process.cwd", cwd, Errno::ENOTDIR)),
        Err(_) => std::fs::create_dir_all(cwd).map_err(|e| Error::io("create process.cwd", cwd, e)),
    }
}

fn accept_start(listener: RawFd) -> Result<OwnedFd> {
    loop {
        // SAFETY: accept4 on our listening socket; no address wanted.
        let fd = unsafe {
            libc::accept4(
                listener,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        if fd >= 0 {
            // SAFETY: accept4 returned a new fd that we own.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = Errno::last();
        if e != Errno::EINTR {
            return Err(Error::sys("accept start connection", e));
        }
    }
}

/// Resolve the unix socket path of a container's start socket without the
/// 108-byte sun_path limit getting in the way of a long --root: the
/// directory is reached through /proc/self/fd.
pub fn start_socket_addr(dir_fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!(
        "/proc/self/fd/{}/{}",
        dir_fd.as_raw_fd(),
        crate::state::START_SOCKET
    ))
}
