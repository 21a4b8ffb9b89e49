//! The container lifecycle: create, start, kill, delete, state, list, run.

pub mod create;
pub mod exec;
pub mod init;
pub mod plan;
pub mod resources;
pub mod sync;

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

pub use create::{create, write_pid_file, Launched};
pub use plan::CreateOptions;

use crate::error::{Error, Result};
use crate::hooks;
use crate::spawn;
use crate::state::{self, ContainerState, Status, Store};

/// Release a created container's init to exec the user process, then run
/// the poststart hooks. Returns when the user process has been exec'd.
pub fn start(store: &Store, id: &str) -> Result<()> {
    let lock = store.lock(id)?;
    let st = store.load(id)?;
    match store.status(&st) {
        Status::Created => {}
        Status::Stopped => {
            return Err(Error::msg(format!(
                "container not running: {id} has stopped and cannot be started"
            )))
        }
        other => {
            return Err(Error::msg(format!(
                "cannot start an already {other} container: {id}"
            )))
        }
    }
    let dir = store.dir(id);
    let dir_fd = std::fs::File::open(&dir).map_err(|e| Error::io("open", &dir, e))?;
    let addr = init::start_socket_addr(dir_fd.as_fd());
    let mut conn = UnixStream::connect(&addr).map_err(|e| {
        Error::io(
            "connect to the container's start socket",
            dir.join(state::START_SOCKET),
            e,
        )
    })?;
    // From here on the container has left `created`, whatever happens next.
    let _ = std::fs::remove_file(dir.join(state::START_SOCKET));
    let mut reply = String::new();
    // EOF without a word: exec succeeded (the connection was close-on-exec).
    conn.read_to_string(&mut reply)
        .map_err(|e| Error::io("read start result", dir.join(state::START_SOCKET), e))?;
    if !reply.is_empty() {
        return Err(Error::msg(reply));
    }
    log::debug!("start {id}: the init (pid {}) exec'd the process", st.pid);
    // The hooks may call back into the runtime (exec, pause, ...) on this container.
    drop(lock);
    if !st.poststart_hooks.is_empty() {
        let json = plan::hook_state(id, "running", st.pid, &st.bundle, &st.annotations);
        hooks::run_hooks_warn("poststart", &st.poststart_hooks, json.as_bytes());
    }
    Ok(())
}

pub fn kill(store: &Store, id: &str, signal: i32, all: bool) -> Result<()> {
    let st = store.load(id)?;
    if signal == 0 {
        // A liveness probe: sends nothing, says whether the container still runs.
        if store.status(&st) == Status::Stopped {
            return Err(Error::NotRunning(id.to_string()));
        }
        let pidfd = state::open_init(&st)?;
        return spawn::pidfd_send_signal(pidfd.as_fd(), 0)
            .map_err(|e| Error::msg(format!("kill container {id}: {e}")));
    }
    if all {
        let cg = st
            .cgroup
            .as_ref()
            .ok_or_else(|| Error::msg(format!("kill --all {id}: the container has no cgroup")))?;
        let sig = nix::sys::signal::Signal::try_from(signal)
            .map_err(|e| Error::sys(format!("signal {signal}"), e))?;
        return cg.kill_all(sig);
    }
    if store.status(&st) == Status::Stopped {
        return Err(Error::NotRunning(id.to_string()));
    }
    let pidfd = state::open_init(&st)?;
    spawn::pidfd_send_signal(pidfd.as_fd(), signal)
        .map_err(|e| Error::msg(format!("kill container {id}: {e}")))
}

/// How long `delete` waits for a killed init to die.
const KILL_WAIT_MS: i32 = 10_000;

pub fn delete(store: &Store, id: &str, force: bool) -> Result<()> {
    let _lock = match (force, store.try_lock(id)) {
        (_, Ok(Some(l))) => l,
        // Held (by an exec stuck in its setup: a NOTIFY agent that never answers, a
        // container that freezes it...): --force must still finish. Killing the container's
        // processes ends whatever holds the lock, then it is ours.
        (true, Ok(None)) => {
            if let Ok(st) = store.load(id) {
                if let Some(cg) = &st.cgroup {
                    let _ = cg.thaw();
                    let _ = cg.kill_all(nix::sys::signal::Signal::SIGKILL);
                }
                if let Ok(pidfd) = state::open_init(&st) {
                    let _ = spawn::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
                }
            }
            store.lock(id)?
        }
        (false, Ok(None)) => store.lock(id)?,
        (true, Err(Error::NotExist(_))) => return Ok(()),
        (_, Err(e)) => return Err(e),
    };
    let st = match store.load(id) {
        Ok(st) => st,
        // A create that died before writing its state: nothing runs that we know of.
        Err(Error::NotExist(_)) if force => return store.remove(id),
        Err(Error::NotExist(_)) => {
            return Err(Error::msg(format!(
                "container {id} has no state (an interrupted create?): use delete --force"
            )))
        }
        // skiff writes states atomically; an unreadable one came from
        // elsewhere. --force still removes the directory (nothing in it
        // says which processes or cgroups were the container's).
        Err(e) if force => {
            log::warn!("delete --force {id}: {e}: removing its state directory");
            return store.remove(id);
        }
        Err(e) => return Err(e),
    };
    let status = store.status(&st);
    let thaw = || {
        if let Some(cg) = &st.cgroup {
            // A frozen process cannot die: thaw first.
            let _ = cg.thaw();
        }
    };
    match status {
        Status::Stopped => {}
        Status::Created => {
            thaw();
            kill_and_wait(&st)?
        }
        Status::Creating if force && st.pid == 0 => {}
        Status::Running | Status::Paused | Status::Creating if force => {
            thaw();
            kill_and_wait(&st)?
        }
        other => {
            return Err(Error::msg(format!(
                "cannot delete container {id} that is not stopped: {other}"
            )))
        }
    }
    if let Some(cg) = &st.cgroup {
        // Whatever the init left behind (without its own pid namespace its
        // children outlive it) goes with the container.
        // Without a pid namespace of its own, the init's children outlive
        // it: whatever the cgroup still holds goes with the container.
        if !cg.pids()?.is_empty() {
            cg.kill_all(nix::sys::signal::Signal::SIGKILL)?;
        }
        cg.destroy()
            .map_err(|e| Error::msg(format!("delete container {id}: remove its cgroups: {e}")))?;
    }
    if let Some(rdt) = &st.rdt {
        crate::rdt::remove(rdt)?;
    }
    if st.host_mounts {
        crate::rootfs::unmount_under(&st.rootfs)
            .map_err(|e| Error::msg(format!("delete container {id}: unmount its mounts: {e}")))?;
    }
    if !st.poststop_hooks.is_empty() {
        let json = plan::hook_state(id, "stopped", 0, &st.bundle, &st.annotations);
        hooks::run_hooks_warn("poststop", &st.poststop_hooks, json.as_bytes());
    }
    store.remove(id)
}

fn kill_and_wait(st: &ContainerState) -> Result<()> {
    let Ok(pidfd) = state::open_init(st) else {
        return Ok(()); // already gone
    };
    spawn::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL)
        .map_err(|e| Error::msg(format!("kill container {}: {e}", st.id)))?;
    if !spawn::pidfd_wait_exit(pidfd.as_fd(), KILL_WAIT_MS)? {
        return Err(Error::msg(format!(
            "container {} (pid {}) did not die within {} s of SIGKILL",
            st.id,
            st.pid,
            KILL_WAIT_MS / 1000
        )));
    }
    Ok(())
}

/// The runtime-spec state object with runc's extra fields, in runc's order (`state` and
/// `list --format json` print it; scripts grep these lines).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateView<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: &'static str,
    pub bundle: &'a std::path::Path,
    pub rootfs: &'a std::path::Path,
    pub created: &'a str,
    #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
    pub annotations: &'a std::collections::HashMap<String, String>,
    pub owner: &'a str,
}

impl<'a> StateView<'a> {
    pub fn new(st: &'a ContainerState, status: Status) -> Self {
        StateView {
            oci_version: &st.oci_version,
            id: &st.id,
            pid: if status == Status::Stopped { 0 } else { st.pid },
            status: status.as_str(),
            bundle: &st.bundle,
            rootfs: &st.rootfs,
            created: &st.created,
            annotations: &st.annotations,
            owner: &st.owner,
        }
    }
}

/// The state of `st` as `state` prints it.
pub fn state_json<'a>(store: &Store, st: &'a ContainerState) -> StateView<'a> {
    StateView::new(st, store.status(st))
}

/// Every container with a readable state, for `list`.
pub fn list(store: &Store) -> Result<Vec<(ContainerState, Status)>> {
    let mut out = Vec::new();
    for id in store.ids()? {
        // A directory without a complete state is a create in progress or
        // one that died; `list` shows what it can read.
        if let Ok(st) = store.load(&id) {
            let status = store.status(&st);
            out.push((st, status));
        }
    }
    Ok(out)
}
