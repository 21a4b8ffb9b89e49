//! `exec`: run another process in a running container.
//!
//! The new process joins the init's namespaces through its pidfd: one
//! `setns(pidfd, flags)` enters them all at once, in the kernel's own safe
//! order (user first), and the pidfd pins the init so a reused pid can never
//! send us into a stranger's namespaces. Only namespaces that differ from
//! ours are joined (joining one's own user namespace is an error). The pid
//! namespace applies to children only, so the parent enters it for the
//! clone and returns to its own right after.
//!
//! Success is seen as end-of-file on the sync channel: the channel is
//! close-on-exec, so it closes exactly when exec succeeds; a failure is a
//! message before that.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::Process;

use crate::container::sync::{Channel, ToInit, ToParent};
use crate::error::{Context, Error, Result};
use crate::process::{final_exec, prepare_process};
use crate::process::{process_plan, TerminalWiring};
use crate::state::{self, Status, Store};
use crate::sys::spawn::{self, Forked};

pub struct ExecOptions {
    pub id: String,
    pub process: Process,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    pub ignore_paused: bool,
    /// `--cgroup [CONTROLLER[,...]:]PATH`: sub-cgroups of the container's to run in.
    pub sub_cgroups: Vec<String>,
}

/// Namespace types in `setns(pidfd, ...)` flag form with their /proc names.
const NAMESPACES: [(&str, libc::c_int); 8] = [
    ("user", libc::CLONE_NEWUSER),
    ("mnt", libc::CLONE_NEWNS),
    ("pid", libc::CLONE_NEWPID),
    ("net", libc::CLONE_NEWNET),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("time", libc::CLONE_NEWTIME),
];

/// The namespaces of `pid` that are not ours.
fn differing_namespaces(pid: i32) -> Result<libc::c_int> {
    let mut flags = 0;
    for (name, flag) in NAMESPACES {
        let theirs = format!("/proc/{pid}/ns/{name}");
        let ours = format!("/proc/self/ns/{name}");
        let (Ok(t), Ok(o)) = (std::fs::metadata(&theirs), std::fs::metadata(&ours)) else {
            continue; // a kernel without this namespace type
        };
        if t.ino() != o.ino() || t.dev() != o.dev() {
            flags |= flag;
        }
    }
    Ok(flags)
}

/// The root of `pid` when it is not ours (a chroot), opened O_PATH.
fn chroot_of(pid: i32) -> Result<Option<OwnedFd>> {
    let theirs = format!("/proc/{pid}/root");
    let (t, o) = (
        std::fs::metadata(&theirs).map_err(|e| Error::io("stat", &theirs, e))?,
        std::fs::metadata("/").map_err(|e| Error::io("stat", "/", e))?,
    );
    if (t.dev(), t.ino()) == (o.dev(), o.ino()) {
        return Ok(None);
    }
    let fd = nix::fcntl::open(
        theirs.as_str(),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys_path("open", &theirs, e))?;
    // SAFETY: open returned a new fd that we own.
    Ok(Some(unsafe {
        <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
    }))
}

fn setns_pidfd(pidfd: BorrowedFd<'_>, flags: libc::c_int, what: &str) -> Result<()> {
    if flags == 0 {
        return Ok(());
    }
    // SAFETY: setns on a valid pidfd with namespace flags; single-threaded.
    if unsafe { libc::setns(pidfd.as_raw_fd(), flags) } < 0 {
        return Err(Error::sys(
            format!("setns {what} ({flags:#x})"),
            Errno::last(),
        ));
    }
    Ok(())
}

/// Returns the exit code to leave with: the process's own in the
/// foreground, 0 when detached.
pub fn exec(store: &Store, opts: &ExecOptions) -> Result<i32> {
    // Shared from the status check until the process has exec'd: pause, delete and start take
    // the lock exclusively, so a pause cannot freeze the process half-way through its setup
    // (leaving this command waiting for a resume nobody may send) and delete cannot remove the
    // cgroups it is joining. Execs run side by side. Not kept for --ignore-paused into a paused
    // container: that setup waits for a resume, which needs the lock.
    let lock = store.lock_shared(&opts.id)?;
    let st = store.load(&opts.id)?;
    let lock = match store.status(&st) {
        Status::Stopped => return Err(Error::NotRunning(opts.id.clone())),
        Status::Paused if !opts.ignore_paused => {
            return Err(Error::msg(format!(
                "cannot exec in a paused container: {} (resume it or pass --ignore-paused)",
                opts.id
            )))
        }
        Status::Paused => {
            drop(lock);
            None
        }
        _ => Some(lock),
    };
    let attach = !opts.detach && opts.console_socket.is_none();
    let plan = process_plan(
        &opts.process,
        crate::process::ContainerWide {
            seccomp: st.seccomp.as_ref(),
            memory_policy: st.memory_policy.as_ref(),
            personality: st.personality.as_ref(),
        },
        TerminalWiring {
            console_socket: opts.console_socket.is_some(),
            attach,
        },
        opts.preserve_fds,
    )?;
    // The cgroups the process joins: the container's, or sub-cgroups of them (--cgroup).
    let cgroup = match &st.cgroup {
        Some(cg) if !opts.sub_cgroups.is_empty() => Some(cg.sub_cgroups(&opts.sub_cgroups)?),
        Some(cg) => Some(cg.clone()),
        None if !opts.sub_cgroups.is_empty() => {
            return Err(Error::msg(format!(
                "--cgroup: container {} has no cgroup",
                opts.id
            )))
        }
        None => None,
    };
    let init_pidfd = state::open_init(&st)?;
    let ns_flags = differing_namespaces(st.pid)?;

    let console_socket = match &opts.console_socket {
        Some(path) => Some(crate::terminal::console::connect_console_socket(path)?),
        None => None,
    };
    let pair = if plan.terminal && console_socket.is_none() {
        let (a, b) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| Error::io("socketpair for the console", "", e))?;
        Some((OwnedFd::from(a), OwnedFd::from(b)))
    } else {
        None
    };
    let console_for_child: Option<RawFd> = console_socket
        .as_ref()
        .map(|s| s.as_raw_fd())
        .or_else(|| pair.as_ref().map(|(_, theirs)| theirs.as_raw_fd()));

    // A container without a mount namespace of its own lives in a chroot of ours: the
    // process goes into the init's root (`setns` of a mount namespace does that otherwise).
    let init_root = if ns_flags & libc::CLONE_NEWNS == 0 {
        chroot_of(st.pid)?
    } else {
        None
    };
    let (parent_end, child_end) = Channel::pair()?;
    // The process must never be visible to the container while it still stands in the host's
    // mount namespace (its /proc/PID/root would be the host's root for a container with
    // CAP_SYS_PTRACE). With a pid namespace of the container's, an intermediate in the host's
    // pid namespace joins every namespace at once and forks the process, which is born inside
    // with the container's root and cwd.
    let via_intermediate = ns_flags & libc::CLONE_NEWPID != 0;
    // The process joins the container's cgroups before it runs anything: born there on v2,
    // moving itself into v1 hierarchies while it waits for the go-ahead.
    let v2_dir = match &cgroup {
        Some(cg) => cg.v2_dir_fd()?,
        None => None,
    };
    // SAFETY: single-threaded; the child ends in exec or _exit (child_main never returns).
    let mut forked = unsafe { spawn::clone_fork(0, v2_dir.as_ref().map(|f| f.as_raw_fd())) };
    let mut placed_into_v2 = v2_dir.is_some();
    if placed_into_v2 && forked.is_err() {
        placed_into_v2 = false;
        // SAFETY: as above.
        forked = unsafe { spawn::clone_fork(0, None) };
    }
    let (first_pid, first_pidfd) = match forked? {
        Forked::Child => child_main(ChildArgs {
            channel: &child_end,
            init_pidfd: init_pidfd.as_fd(),
            ns_flags,
            via_intermediate,
            plan: &plan,
            console: console_for_child,
            join_cgroup: cgroup.as_ref(),
            init_root: init_root.as_ref().map(|f| f.as_raw_fd()),
        }),
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(child_end);
    let ours = pair.map(|(ours, theirs)| {
        drop(theirs);
        ours
    });
    drop(console_socket);
    let first_pidfd = match first_pidfd {
        Some(fd) => fd,
        None => spawn::pidfd_open(first_pid)?,
    };
    // The process (pid, pidfd) once known; until then the first child is it.
    let mut process: Option<(i32, OwnedFd)> = None;
    let outcome = (|| -> Result<()> {
        if let Some(cg) = &cgroup {
            // The child moves itself into the v1 hierarchies (cheaper, see
            // CgroupHandle::join_self_v1); v2 needs us unless it was born there.
            if !placed_into_v2 {
                cg.add_pid_v2(first_pid)?;
            }
        }
        parent_end.send(&ToInit::Proceed { state_json: None })?;
        if via_intermediate {
            match parent_end.recv::<ToParent>()? {
                Some(ToParent::InitPid(real)) => {
                    // Our child (CLONE_PARENT), not reaped yet: its pid cannot be reused.
                    process = Some((real, spawn::pidfd_open(real)?));
                    let _ = spawn::wait_exit_code(first_pid);
                }
                other => return Err(child_failed(other, first_pid)),
            }
            // The process waits for this: until now we did not know its pid.
            parent_end.send(&ToInit::Proceed { state_json: None })?;
        }
        let pid = process.as_ref().map_or(first_pid, |(p, _)| *p);
        loop {
            match parent_end.recv::<ToParent>()? {
                Some(ToParent::Ready) => break,
                Some(ToParent::SeccompListener) => {
                    let state = crate::container::plan::hook_state(
                        &st.id,
                        "running",
                        st.pid,
                        &st.bundle,
                        &st.annotations,
                    );
                    crate::container::create::forward_seccomp_listener(
                        &parent_end,
                        &plan,
                        state.as_bytes(),
                    )?;
                }
                other => return Err(child_failed(other, pid)),
            }
        }
        match parent_end.recv::<ToParent>()? {
            None => {}
            other => return Err(child_failed(other, pid)),
        }
        // A stopper during the setup ends the exec; later ones go to the process.
        crate::sys::signal::check_interrupted()?;
        crate::terminal::relay::block_forwarded_signals()
    })();
    let (pid, pidfd) = match process {
        Some(p) => p,
        None => (first_pid, first_pidfd),
    };
    if let Err(e) = outcome {
        let _ = spawn::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        let _ = spawn::wait_exit_code(pid);
        if pid != first_pid {
            // SAFETY: the intermediate is our child, not reaped yet (a failure before InitPid).
            unsafe { libc::kill(first_pid, libc::SIGKILL) };
            let _ = spawn::wait_exit_code(first_pid);
        }
        return Err(e);
    }
    log::debug!("exec {}: pid {pid} runs {:?}", opts.id, plan.args);
    // The process runs the user's program: from here on it is one of the container's, frozen
    // by a pause and killed by a delete like the others.
    drop(lock);
    let master = match ours {
        Some(ours) => Some(crate::terminal::console::recv_master(ours.as_fd())?),
        None => None,
    };
    if let Some(path) = &opts.pid_file {
        crate::container::write_pid_file(path, pid)?;
    }
    if opts.detach {
        return Ok(0);
    }
    match master {
        Some(m) => {
            crate::terminal::relay::relay(m, pidfd.as_fd())?;
            spawn::wait_exit_code(pid)
        }
        None => crate::terminal::relay::forward_signals_and_wait(pid, pidfd.as_fd()),
    }
}

fn child_failed(msg: Option<ToParent>, pid: i32) -> Error {
    match msg {
        Some(ToParent::Failed(text)) => Error::msg(text),
        Some(other) => Error::msg(format!("sync: unexpected message: {other:?}")),
        None => Error::msg(format!("exec process (pid {pid}) exited during setup")),
    }
}

struct ChildArgs<'a> {
    channel: &'a Channel,
    init_pidfd: BorrowedFd<'a>,
    /// The container's namespaces that are not ours.
    ns_flags: libc::c_int,
    /// Join them in an intermediate that forks the process (see `exec`).
    via_intermediate: bool,
    plan: &'a crate::process::ProcessPlan,
    console: Option<RawFd>,
    join_cgroup: Option<&'a crate::cgroups::CgroupHandle>,
    /// The init's root to chroot into (a container without a mount namespace of its own).
    init_root: Option<RawFd>,
}

/// The first child of `exec`: the process itself, or the intermediate that forks it.
fn child_main(a: ChildArgs<'_>) -> ! {
    crate::process::forbid_inspection();
    let result = (|| -> Result<std::convert::Infallible> {
        // Nothing of the runtime's or the caller's beyond the process's stdio and preserved
        // fds: the state lock (a host directory), the parent's channel end, cgroup fds.
        let mut keep = vec![a.channel.raw_fd(), a.init_pidfd.as_raw_fd()];
        keep.extend(a.console);
        keep.extend(a.init_root);
        crate::process::fds::close_fds_from(3 + a.plan.extra_fds as RawFd, &keep)?;
        // execCPUAffinity.initial applies before the process joins the container.
        if let Some(aff) = &a.plan.affinity {
            crate::process::sched::apply_initial_affinity(aff, 0)?;
        }
        crate::sys::spawn::reset_signals();
        // Still in the host's namespaces: join the container's v1 cgroups.
        if let Some(cg) = a.join_cgroup {
            cg.join_self_v1()?;
        }
        wait_for_go_ahead(a.channel);
        // All at once, in the kernel's order (user first): root and cwd become the
        // container's in the same step as the pid namespace for children.
        setns_pidfd(a.init_pidfd, a.ns_flags, "into the container's namespaces")?;
        // SAFETY: closing our copy of the init's pidfd; nothing uses it after the setns.
        unsafe { libc::close(a.init_pidfd.as_raw_fd()) };
        if let Some(root) = a.init_root {
            nix::unistd::fchdir(root).map_err(|e| Error::sys("fchdir to the init's root", e))?;
            nix::unistd::chroot(".").map_err(|e| Error::sys("chroot to the init's root", e))?;
            nix::unistd::chdir("/").map_err(|e| Error::sys("chdir /", e))?;
            // SAFETY: our copy of the root fd, used.
            unsafe { libc::close(root) };
        }
        if a.via_intermediate {
            // SAFETY: single-threaded; the child continues below, the parent sends and exits.
            match unsafe { spawn::clone_fork(libc::CLONE_PARENT as u64, None) }? {
                Forked::Child => wait_for_go_ahead(a.channel),
                Forked::Parent { pid, .. } => {
                    let _ = a.channel.send(&ToParent::InitPid(pid));
                    // SAFETY: leave the forked intermediate without running destructors.
                    unsafe { libc::_exit(0) }
                }
            }
        }
        crate::process::forbid_inspection();
        if let Some(fd) = a.console {
            // SAFETY: the fd stays open in this process until we close it below.
            let sock = unsafe { BorrowedFd::borrow_raw(fd) };
            crate::terminal::console::setup_console(
                sock,
                a.plan.console_size,
                false,
                a.plan.user.uid(),
            )
            .context("set up the console")?;
            // SAFETY: closing our own copy after use.
            unsafe { libc::close(fd) };
        }
        let prepared = prepare_process(a.plan, a.channel)?;
        a.channel.send(&ToParent::Ready)?;
        Err(final_exec(a.plan, &prepared))
    })();
    let err = match result {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = a
        .channel
        .send(&ToParent::Failed(crate::container::sync::bounded_text(
            err.to_string(),
        )));
    // SAFETY: leave the forked child without running the parent's destructors.
    unsafe { libc::_exit(255) }
}

/// Wait for the parent's Proceed; leave quietly when it is gone.
fn wait_for_go_ahead(channel: &Channel) {
    match channel.recv::<ToInit>() {
        Ok(Some(ToInit::Proceed { .. })) => {}
        // SAFETY: the parent is gone; leave without running destructors.
        _ => unsafe { libc::_exit(255) },
    }
}

/// `exec CMD ARGS` by hand: the container's own process config with the
/// command line's changes, the way runc builds it.
pub struct ExecOverrides {
    pub args: Vec<String>,
    pub tty: bool,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
}

pub fn process_from_overrides(base: &Process, o: &ExecOverrides) -> Result<Process> {
    let mut p = base.clone();
    if o.args.is_empty() {
        return Err(Error::msg("exec: a command to run is required"));
    }
    p.set_args(Some(o.args.clone()));
    p.set_terminal(Some(o.tty));
    p.set_console_size(None);
    if let Some(cwd) = &o.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &o.env {
        let key = kv.split('=').next().unwrap_or(kv);
        env.retain(|e| e.split('=').next() != Some(key));
        if !kv.contains('=') || key.is_empty() {
            // runc refuses a bare key too (docker's `-e KEY` is resolved by the docker CLI).
            return Err(Error::config("--env", format!("{kv:?} is not KEY=VALUE")));
        }
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(u) = &o.user {
        let (uid, gid) = parse_user(u)?;
        let mut user = p.user().clone();
        user.set_uid(uid);
        user.set_gid(gid.unwrap_or(user.gid()));
        p.set_user(user);
    }
    if !o.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(o.additional_gids.clone()));
        p.set_user(user);
    }
    if !o.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &o.caps {
            let full = if name.to_ascii_uppercase().starts_with("CAP_") {
                name.to_ascii_uppercase()
            } else {
                format!("CAP_{}", name.to_ascii_uppercase())
            };
            let cap: oci_spec::runtime::Capability =
                serde_json::from_value(serde_json::json!(full))
                    .map_err(|_| Error::config("--cap", format!("unknown capability {name:?}")))?;
            // As runc: bounding, effective and permitted only. Not inheritable or ambient, so
            // the programs the process runs (a non-root user's above all) do not keep it.
            let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            let (b, e, pm) = (
                add(caps.bounding()),
                add(caps.effective()),
                add(caps.permitted()),
            );
            caps.set_bounding(b);
            caps.set_effective(e);
            caps.set_permitted(pm);
        }
        p.set_capabilities(Some(caps));
    }
    if o.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}

/// `UID[:GID]`, numeric as runc takes them.
pub fn parse_user(text: &str) -> Result<(u32, Option<u32>)> {
    let bad = || Error::config("--user", format!("{text:?} is not UID[:GID]"));
    let (u, g) = match text.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (text, None),
    };
    let uid = u.parse().map_err(|_| bad())?;
    let gid = match g {
        Some(g) => Some(g.parse().map_err(|_| bad())?),
        None => None,
    };
    Ok((uid, gid))
}

/// Read `--process FILE` (or `-` for stdin).
pub fn process_from_file(path: &Path) -> Result<Process> {
    let bytes = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .map_err(|e| Error::io("read", "stdin", e))?;
        buf
    } else {
        std::fs::read(path).map_err(|e| Error::io("read --process", path, e))?
    };
    // The schema requires only cwd and args: without a user the process runs as 0:0 (runc),
    // and oci-spec needs the object: add it. Either case goes through a Value then.
    let needs_user = !bytes.windows(6).any(|w| w == b"\"user\"");
    if needs_user || crate::process::sched::spec_needs_fixup(&bytes) {
        // runtime-spec spellings oci-spec does not read: go through a Value.
        let mut value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::msg(format!("{}: malformed JSON: {e}", path.display())))?;
        if let Some(obj) = value.as_object_mut() {
            obj.entry("user")
                .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
        }
        crate::process::sched::fixup_spec_json(&mut value, true);
        return serde_path_to_error::deserialize(value).map_err(|e| {
            Error::msg(format!(
                "{}: invalid process: {}: {}",
                path.display(),
                e.path(),
                e.inner()
            ))
        });
    }
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        Error::msg(format!(
            "{}: invalid process: {}: {}",
            path.display(),
            e.path(),
            e.inner()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Process {
        serde_json::from_str(
            r#"{"user":{"uid":0,"gid":0},"args":["sh"],"env":["PATH=/bin","A=1"],"cwd":"/",
                "capabilities":{"bounding":["CAP_KILL"],"effective":["CAP_KILL"],"permitted":["CAP_KILL"]}}"#,
        )
        .unwrap()
    }

    fn overrides() -> ExecOverrides {
        ExecOverrides {
            args: vec!["ls".into(), "-l".into()],
            tty: false,
            cwd: Some("/tmp".into()),
            env: vec!["A=2".into(), "B=3".into()],
            user: Some("1000:100".into()),
            additional_gids: vec![5, 6],
            caps: vec!["net_admin".into()],
            no_new_privs: true,
        }
    }

    #[test]
    fn overrides_apply_like_runc() {
        let p = process_from_overrides(&base(), &overrides()).unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &["ls", "-l"]);
        assert_eq!(p.cwd(), Path::new("/tmp"));
        assert_eq!(p.env().as_ref().unwrap(), &["PATH=/bin", "A=2", "B=3"]);
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 100));
        assert_eq!(p.user().additional_gids().as_ref().unwrap(), &[5, 6]);
        let caps = p.capabilities().as_ref().unwrap();
        let has = |s: &Option<oci_spec::runtime::Capabilities>| {
            s.as_ref()
                .is_some_and(|s| s.contains(&oci_spec::runtime::Capability::NetAdmin))
        };
        assert!(has(caps.bounding()) && has(caps.effective()) && has(caps.permitted()));
        assert!(!has(caps.ambient()) && !has(caps.inheritable()));
        assert_eq!(p.no_new_privileges(), Some(true));
    }

    #[test]
    fn bad_user_and_cap_name_the_flag() {
        let mut o = overrides();
        o.user = Some("root".into());
        let e = process_from_overrides(&base(), &o).unwrap_err().to_string();
        assert!(e.starts_with("--user"), "{e}");
        let mut o = overrides();
        o.caps = vec!["CAP_NOPE".into()];
        let e = process_from_overrides(&base(), &o).unwrap_err().to_string();
        assert!(e.starts_with("--cap") && e.contains("CAP_NOPE"), "{e}");
    }

    #[test]
    fn namespaces_of_self_do_not_differ() {
        assert_eq!(differing_namespaces(std::process::id() as i32).unwrap(), 0);
    }
}
