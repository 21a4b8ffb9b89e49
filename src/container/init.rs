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

use crate::container::plan::{ContainerPlan, ProcessPlan};
use crate::error::{Context, Error, Result};
use crate::namespaces::{self, Disposition, NamespaceFile};
use crate::sync::{Channel, ToInit, ToParent};
use crate::{capabilities, exec, hooks, rlimits, rootfs, user};

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
        .send(&ToParent::Failed(crate::sync::bounded_text(
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
    crate::spawn::close_fds_from(3 + a.plan.process.extra_fds as RawFd, &keep)
}

fn setup_and_wait(a: &InitArgs<'_>) -> Result<Infallible> {
    let plan = a.plan;
    // The container starts with no signal blocked or ignored.
    crate::spawn::reset_signals();
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
        crate::sched::apply_initial_affinity(aff, 0)?;
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
        crate::process::set_oom_score_adj(adj)?;
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
        crate::console::setup_console(
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
    let program = exec::find_executable(&p.args[0], &env, &p.cwd)?;
    if let Some(m) = &p.memory_policy {
        crate::mempolicy::apply(m)?;
    }
    if let Some(x) = &p.personality {
        crate::personality::apply(x)?;
    }
    rlimits::apply(&p.rlimits)?;
    capabilities::drop_bounding(&p.capabilities)?;
    if p.no_new_privileges {
        crate::process::set_no_new_privs()?;
    }
    // Real-time policies and high I/O priorities need CAP_SYS_NICE: before the switch.
    if let Some(s) = &p.scheduler {
        crate::sched::apply_scheduler(s)?;
    }
    if let Some(io) = &p.io_priority {
        crate::sched::apply_io_priority(io)?;
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
    exec::prepare_fds(p.extra_fds)?;
    crate::lsm::apply(p.apparmor_profile.as_deref(), p.selinux_label.as_deref())?;
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
pub fn install_seccomp(sc: &crate::container::plan::SeccompSetup, channel: &Channel) -> Result<()> {
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
        if let Err(e) = crate::sched::apply_final_affinity(aff, 0) {
            return e;
        }
    }
    let ready = match exec::PreparedExec::new(&prepared.program, &p.args, &prepared.env) {
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
    match unsafe { crate::spawn::clone_fork(0, None) }? {
        crate::spawn::Forked::Child => Ok(()),
        crate::spawn::Forked::Parent { pid, .. } => {
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

/// $HOME for a process whose env has none: from the container's
/// /etc/passwd, "/" when the user is not listed.
fn home_of(uid: u32) -> String {
    // The container's own file: a FIFO or a huge file there must not hang or bloat us.
    let text = crate::fsio::read_regular("/etc/passwd", 4 << 20)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    match crate::user::passwd_entry(&text, uid) {
        Some((_, home)) if !home.is_empty() => home.to_string(),
        _ => "/".into(),
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
