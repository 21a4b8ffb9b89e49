//! `create`, the parent's side: validate, prepare, clone the init, serve
//! its requests (id maps, runtime hooks), record the state.
//!
//! Invariant: until `create` succeeds, every error path kills and reaps the
//! init and removes the state directory (`Cleanup`), so a failed create
//! leaves nothing behind. The init's mounts live in its own mount
//! namespace and vanish with it.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use nix::errno::Errno;

use crate::cgroups::{self, CgroupHandle, HostCgroups, HostLimits};
use crate::config;
use crate::container::init::{self, start_socket_addr};
use crate::container::plan::{hook_state, ContainerPlan, CreateOptions};
use crate::container::sync::{Channel, ToInit, ToParent};
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::namespaces::{self, Disposition};
use crate::state::{self, ContainerState, Store};
use crate::sys::spawn::{self, Forked};

/// A created container, as `run` needs it to go on.
pub struct Launched {
    pub state: ContainerState,
    /// The init is our child (true unless an intermediate process made it).
    pub pidfd: OwnedFd,
    /// The pty master when `run` attaches the terminal itself.
    pub console_master: Option<OwnedFd>,
}

/// Removes what a failed create made.
struct Cleanup<'a> {
    store: &'a Store,
    id: String,
    /// The rootfs whose mounts are in our table (no mount namespace): unmounted.
    host_mounts: Option<PathBuf>,
    init: Option<(i32, Option<OwnedFd>)>,
    cgroup: Option<CgroupHandle>,
    rdt: Option<crate::rdt::RdtCleanup>,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some((pid, pidfd)) = self.init.take() {
            match &pidfd {
                Some(fd) => {
                    let _ = spawn::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
                }
                // SAFETY: pid is our own child that has not been reaped yet.
                None => unsafe {
                    libc::kill(pid, libc::SIGKILL);
                },
            }
            let _ = spawn::wait_exit_code(pid);
        }
        if let Some(rdt) = self.rdt.take() {
            let _ = crate::rdt::remove(&rdt);
        }
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.kill_all(nix::sys::signal::Signal::SIGKILL);
            let _ = cg.destroy();
        }
        if let Some(rootfs) = self.host_mounts.take() {
            let _ = crate::rootfs::unmount_under(&rootfs);
        }
        let _ = self.store.remove(&self.id);
    }
}

pub fn create(store: &Store, opts: &CreateOptions) -> Result<Launched> {
    state::validate_id(&opts.id)?;
    let spec = config::load(&opts.bundle)?;
    crate::namespaces::userns::check(&spec)?;
    let plan = ContainerPlan::from_spec(&spec, opts)?;
    log::debug!(
        "create {}: bundle {}, rootfs {}, namespaces {:?}",
        opts.id,
        plan.bundle.display(),
        plan.rootfs.rootfs().display(),
        plan.namespaces
    );
    let annotations: HashMap<String, String> = spec.annotations().clone().unwrap_or_default();

    // Everything that can fail on bad input is opened before anything exists.
    let ns_files = namespaces::open_joins(&plan.namespaces)?;
    if plan.rdt.is_some() {
        // Fails here, before anything exists, on hosts without resctrl.
        crate::rdt::resctrl_root()?;
    }
    let mut rdt_cleanup = None;
    let console_socket = match &opts.console_socket {
        Some(path) => Some(crate::terminal::console::connect_console_socket(path)?),
        None => None,
    };
    let pidfd_socket = match &opts.pidfd_socket {
        Some(path) => {
            Some(crate::terminal::console::connect_console_socket(path).context("--pidfd-socket")?)
        }
        None => None,
    };
    let run_console = if plan.process.terminal && opts.console_socket.is_none() {
        Some(console_pair()?)
    } else {
        None
    };

    let dir = store.create_dir(&opts.id)?;
    let mut cleanup = Cleanup {
        store,
        id: opts.id.clone(),
        host_mounts: plan
            .rootfs
            .in_host_mount_ns()
            .then(|| plan.rootfs.rootfs().to_path_buf()),
        init: None,
        cgroup: None,
        rdt: None,
        armed: true,
    };
    let lock = store.lock(&opts.id)?;
    let dir_fd = nix::fcntl::open(
        &dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys_path("open", &dir, e))?;
    // SAFETY: open returned a new fd that we own.
    let dir_fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(dir_fd) };
    let sock_path = start_socket_addr(dir_fd.as_fd());
    let listener = UnixListener::bind(&sock_path)
        .map_err(|e| Error::io("bind start socket", dir.join(state::START_SOCKET), e))?;

    let (parent_end, init_end) = Channel::pair()?;
    let console_for_init: Option<RawFd> = match (&console_socket, &run_console) {
        (Some(s), _) => Some(s.as_raw_fd()),
        (None, Some((_, init_side))) => Some(init_side.as_raw_fd()),
        (None, None) => None,
    };

    // A pid namespace to join applies to our next child only; go back after.
    let own_pid_ns = match &plan.namespaces.pid {
        Disposition::Join(_) => {
            let own = std::fs::File::open("/proc/self/ns/pid")
                .map_err(|e| Error::io("open", "/proc/self/ns/pid", e))?;
            let target = ns_files
                .iter()
                .find(|n| n.typ == oci_spec::runtime::LinuxNamespaceType::Pid)
                .ok_or_else(|| Error::msg("pid namespace file missing"))?;
            namespaces::join(target)?;
            Some(own)
        }
        _ => None,
    };

    if plan.namespaces.needs_intermediate() {
        // The real init is our grandchild: adopt it when the intermediate exits.
        // SAFETY: prctl with plain integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    let host_mountinfo = crate::sys::mountinfo::read_own()?;
    let host_cgroups = HostCgroups::probe_with_mountinfo(&host_mountinfo)?;
    let own_pid = std::process::id() as i32;
    let mut st = ContainerState {
        oci_version: config::OCI_VERSION.to_string(),
        id: plan.id.clone(),
        pid: 0,
        pid_start_time: 0,
        bundle: plan.bundle.clone(),
        rootfs: plan.rootfs.rootfs().to_path_buf(),
        created: state::now_rfc3339(),
        owner: owner_name(),
        annotations: annotations.clone(),
        poststart_hooks: plan.hooks.poststart.clone(),
        poststop_hooks: plan.hooks.poststop.clone(),
        own_pid_ns: plan.namespaces.pid != Disposition::Host,
        host_mounts: plan.rootfs.in_host_mount_ns(),
        cgroup: Some(CgroupHandle::resolve(&host_cgroups, &plan.cgroup.path)),
        rdt: None,
        process: spec.process().clone(),
        seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
        memory_policy: spec
            .linux()
            .as_ref()
            .and_then(|l| l.memory_policy().clone()),
        personality: spec.linux().as_ref().and_then(|l| l.personality().clone()),
        creator: spawn::stat_start_time(own_pid).map(|(t, _)| (own_pid, t)),
    };
    // From here on, a create killed at any point leaves a state from which
    // `delete --force` finds the cgroups (and so every process) to remove.
    store.save(&st)?;
    // Bind sources are opened here, as the runtime, unless the container's mount namespace
    // is joined by path (its sources are looked up there) or we may not mount (rootless).
    let binds_here = !opts.rootless && !matches!(plan.namespaces.mount, Disposition::Join(_));
    let idmapped = crate::rootfs::DetachedMounts::prepare(&plan.rootfs, binds_here)?;
    let limits = HostLimits::probe_for(&plan.cgroup.resources)?;
    // Where the init moves itself into v1 hierarchies (no user namespace,
    // not rootless), it is cloned before they exist: while we make them (a
    // mkdir and a few writes in each of ~10 hierarchies), it creates its
    // network namespace, the costliest part of the clone, on the other CPU.
    // It joins them once told to proceed.
    let overlap = host_cgroups.mode() != cgroups::Mode::Unified
        && !opts.rootless
        && !plan.namespaces.in_userns();
    let cgroup = if overlap {
        cgroups::create_part(&host_cgroups, &limits, &plan.cgroup, cgroups::Part::V2)?
    } else {
        cgroups::create_for(&host_cgroups, &limits, &plan.cgroup, opts.rootless)?
    };
    // A failed create kills what is in the cgroups it made: only those of
    // the steps done (a v1 directory found in use after the clone belongs
    // to someone else).
    log::debug!("create {}: cgroups {:?}", opts.id, cgroup);
    cleanup.cgroup = Some(if overlap {
        cgroup.part(cgroups::Part::V2)
    } else {
        cgroup.clone()
    });
    // On cgroup v2 the init is born in its cgroup (CLONE_INTO_CGROUP);
    // v1 hierarchies are joined before the init proceeds.
    let v2_dir = cgroup.v2_dir_fd()?;
    let mut flags = plan.namespaces.clone_flags();
    let unshare_network =
        overlap && plan.net_devices.is_empty() && flags & libc::CLONE_NEWNET as u64 != 0;
    if unshare_network {
        flags &= !(libc::CLONE_NEWNET as u64);
    }
    // Without a user namespace the init can move itself into the v1
    // hierarchies, which is much cheaper than moving it from here.
    let self_join = !plan.namespaces.in_userns() && cgroup.has_v1();
    // SAFETY: skiff is single-threaded; the child ends in init::run, which
    // never returns (it execs or _exits).
    let mut forked = unsafe { spawn::clone_fork(flags, v2_dir.as_ref().map(|f| f.as_raw_fd())) };
    let mut placed_into_v2 = v2_dir.is_some();
    if placed_into_v2 && forked.is_err() {
        // Kernels or cgroup states that refuse CLONE_INTO_CGROUP: place by pid instead.
        placed_into_v2 = false;
        // SAFETY: as above.
        forked = unsafe { spawn::clone_fork(flags, None) };
    }
    let forked = match forked {
        Ok(Forked::Child) => init::run(init::InitArgs {
            plan: &plan,
            channel: &init_end,
            start_listener: listener.as_raw_fd(),
            console: console_for_init,
            ns_files: &ns_files,
            idmapped: &idmapped,
            host_mountinfo: &host_mountinfo,
            join_cgroup: self_join.then_some(&cgroup),
            unshare_network,
        }),
        other => other,
    };
    // Only the parent gets here: return to our own pid namespace for later children.
    if let Some(own) = &own_pid_ns {
        namespaces::join_fd(
            own.as_fd(),
            oci_spec::runtime::LinuxNamespaceType::Pid,
            std::path::Path::new("/proc/self/ns/pid"),
        )?;
    }
    let (mut pid, pidfd) = match forked? {
        Forked::Child => unreachable!("the child never returns from init::run"),
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    log::debug!("create {}: init cloned, pid {pid}", opts.id);
    cleanup.init = Some((pid, pidfd));
    drop(init_end);
    drop(listener);
    // Only the init keeps its end of the console pair.
    let run_console = run_console.map(|(ours, theirs)| {
        drop(theirs);
        ours
    });
    drop(console_socket);

    if overlap {
        cgroups::create_part(&host_cgroups, &limits, &plan.cgroup, cgroups::Part::V1)?;
        cleanup.cgroup = Some(cgroup.clone());
    }
    // The child waits for this go-ahead before running anything of the
    // container's: its cgroups must exist, and its id maps be written.
    if plan.namespaces.user == Disposition::New {
        crate::namespaces::userns::write_id_maps(pid, &plan.uid_map, &plan.gid_map)?;
    }
    match (placed_into_v2, self_join) {
        (true, true) => {}
        (true, false) => cgroup.add_pid_v1(pid)?,
        (false, true) => cgroup.add_pid_v2(pid)?,
        (false, false) => cgroup.add_pid(pid)?,
    }
    if !plan.net_devices.is_empty() {
        match ns_files
            .iter()
            .find(|n| n.typ == oci_spec::runtime::LinuxNamespaceType::Network)
        {
            Some(joined) => {
                crate::namespaces::netdev::move_devices_to(&plan.net_devices, joined.fd.as_fd())?
            }
            None => crate::namespaces::netdev::move_devices(&plan.net_devices, pid)?,
        }
    }
    if let Some(rdt) = &plan.rdt {
        let root = crate::rdt::resctrl_root()?;
        rdt_cleanup = Some(crate::rdt::apply_at(&root, rdt, pid)?);
        cleanup.rdt = rdt_cleanup.clone();
    }
    let state_json = plan
        .init_needs_state()
        .then(|| hook_state(&plan.id, "creating", pid, &plan.bundle, &annotations));
    parent_end.send(&ToInit::Proceed { state_json })?;

    if plan.namespaces.needs_intermediate() {
        // The child forked the real init into the new pid namespace (it
        // inherits the cgroups) and exits; the init is re-parented to us.
        match parent_end.recv::<ToParent>()? {
            Some(ToParent::InitPid(real)) => {
                let _ = spawn::wait_exit_code(pid);
                pid = real;
                let fd = spawn::pidfd_open(real)?;
                cleanup.init = Some((real, Some(fd)));
            }
            other => return Err(init_failed(other, pid, &cgroup)),
        }
    }
    let creating_state = || hook_state(&plan.id, "creating", pid, &plan.bundle, &annotations);

    loop {
        match parent_end.recv::<ToParent>()? {
            Some(ToParent::RuntimeHooks) => {
                log::debug!(
                    "create {}: namespaces joined, {} mounts made; prestart and createRuntime hooks",
                    plan.id,
                    spec.mounts().as_ref().map_or(0, |m| m.len())
                );
                let st = creating_state();
                hooks::run_hooks("prestart", &plan.hooks.prestart, st.as_bytes())?;
                hooks::run_hooks("createRuntime", &plan.hooks.create_runtime, st.as_bytes())?;
                parent_end.send(&ToInit::RuntimeHooksDone)?;
            }
            Some(ToParent::SeccompListener) => {
                log::debug!(
                    "create {}: seccomp filter installed, listener to the agent",
                    plan.id
                );
                forward_seccomp_listener(&parent_end, &plan.process, creating_state().as_bytes())?;
            }
            Some(ToParent::Ready) => {
                log::debug!(
                    "create {}: init ready (root entered, process set up{})",
                    plan.id,
                    if plan.process.seccomp.is_some() {
                        "; seccomp filter at exec"
                    } else {
                        ""
                    }
                );
                break;
            }
            other => return Err(init_failed(other, pid, &cgroup)),
        }
    }

    let (start_time, _) = spawn::stat_start_time(pid)
        .ok_or_else(|| Error::msg(format!("container init (pid {pid}) vanished after setup")))?;
    st.pid = pid;
    st.pid_start_time = start_time;
    st.created = state::now_rfc3339();
    st.cgroup = (!cgroup.is_empty()).then(|| cgroup.clone());
    st.rdt = rdt_cleanup;
    st.creator = None;
    // A stopper (Ctrl-C, SIGTERM) during setup: nothing stays (see signal::make_setup_interruptible).
    crate::sys::signal::check_interrupted()?;
    store.save(&st)?;
    parent_end.send(&ToInit::Committed)?;

    let console_master = match run_console {
        Some(ours) => Some(crate::terminal::console::recv_master(ours.as_fd())?),
        None => None,
    };
    let pidfd = match cleanup.init.as_mut().and_then(|(_, fd)| fd.take()) {
        Some(fd) => fd,
        None => spawn::pidfd_open(pid)?,
    };
    if let Some(sock) = &pidfd_socket {
        crate::terminal::console::send_named_fd(
            sock.as_fd(),
            pidfd.as_raw_fd(),
            plan.id.as_bytes(),
        )
        .map_err(|e| Error::sys("send the init's pidfd over --pidfd-socket", e))?;
    }
    if let Some(path) = &opts.pid_file {
        write_pid_file(path, pid)?;
    }
    cleanup.init = None;
    cleanup.cgroup = None;
    cleanup.rdt = None;
    cleanup.armed = false;
    drop(lock);
    Ok(Launched {
        state: st,
        pidfd,
        console_master,
    })
}

/// The init sent its seccomp NOTIFY listener: pass it on to the agent at
/// listenerPath with the container state, and tell the init it is done.
pub fn forward_seccomp_listener(
    channel: &Channel,
    process: &crate::process::ProcessPlan,
    state_json: &[u8],
) -> Result<()> {
    // SAFETY: the channel's fd is open for the life of `channel`.
    let sock = unsafe { std::os::fd::BorrowedFd::borrow_raw(channel.raw_fd()) };
    let listener = crate::seccomp::recv_fd(sock)?;
    let sc = process
        .seccomp
        .as_ref()
        .ok_or_else(|| Error::msg("sync: a seccomp listener without a seccomp config"))?;
    let path = sc.listener_path.as_deref().ok_or_else(|| {
        Error::config(
            "linux.seccomp.listenerPath",
            "required for SCMP_ACT_NOTIFY rules",
        )
    })?;
    crate::seccomp::send_listener(path, listener, state_json, sc.listener_metadata.as_deref())?;
    channel.send(&ToInit::SeccompListenerSent)
}

/// The init stopped talking: its last words, or how it ended (the OOM killer, most often,
/// when its cgroup's memory limit is lower than what setting up a container takes).
fn init_failed(msg: Option<ToParent>, pid: i32, cgroup: &CgroupHandle) -> Error {
    match msg {
        Some(ToParent::Failed(text)) => Error::msg(text),
        Some(other) => Error::msg(format!("sync: unexpected message from init: {other:?}")),
        None => {
            // It is gone (end of file on the channel): reap it to learn how.
            let code = spawn::wait_exit_code(pid).ok();
            if code == Some(128 + libc::SIGKILL) && cgroup.oom_kill_count() > 0 {
                return Error::config(
                    "linux.resources.memory.limit",
                    format!("container init (pid {pid}) was killed by the OOM killer during setup: the memory limit is too low"),
                );
            }
            match code {
                Some(c) if c > 128 => Error::msg(format!(
                    "container init (pid {pid}) was killed by signal {} during setup",
                    c - 128
                )),
                _ => Error::msg(format!(
                    "container init (pid {pid}) exited during setup without a reason"
                )),
            }
        }
    }
}

/// runc-compat: the decimal pid, no newline, written atomically.
pub fn write_pid_file(path: &std::path::Path, pid: i32) -> Result<()> {
    let path: PathBuf = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io("getcwd", ".", e))?
            .join(path)
    };
    state::write_atomic(&path, pid.to_string().as_bytes(), 0o644).context("--pid-file")
}

fn console_pair() -> Result<(OwnedFd, OwnedFd)> {
    let (a, b) = std::os::unix::net::UnixStream::pair()
        .map_err(|e| Error::sys("socketpair for the console", io_errno(&e)))?;
    Ok((OwnedFd::from(a), OwnedFd::from(b)))
}

fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO)
}

fn owner_name() -> String {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    // /etc/passwd first (one read); the C library's lookup (NSS) for users
    // it does not list.
    let text = crate::sys::fsio::read_to_string("/etc/passwd").unwrap_or_default();
    if let Some((name, _)) = crate::process::user::passwd_entry(&text, uid) {
        return name.to_string();
    }
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}
